// The live-list recipe of docs/howto/live-list.md, run by live-list.test.mjs against real servers.
// live-list.mjs
/**
 * Keep `items` (id -> object) equal to what a model router's `list` gives, on `socket` (a
 * RouterSocket): subscribe, list, apply the pushes, and after a reconnect resume, or list again.
 * `query`: the query parameters of `list` and `subscribe`; `onChange(route, items)`: after each change.
 */
export function liveList(socket, { query = null, onChange = () => {} } = {}) {
  const items = new Map(); // id -> the object, as `get` gives it
  const etags = new Map(); // id -> the etag of the push that brought it
  let buffer = []; // pushes that come while a `list` is in flight: applied after its reply
  let last = { subscription: null, seq: 0 };

  async function relist() {
    const mine = (buffer = []); // a newer relist() replaces it, and its reply wins
    const reply = await socket.request("list", query);
    if (buffer !== mine) return;
    if (reply.status !== 200) throw new Error(`list answered ${reply.status}`);
    buffer = null;
    items.clear();
    etags.clear();
    for (const object of reply.payload) items.set(object.id, object);
    onChange("list", items);
    for (const push of mine) apply(push);
  }

  function apply(push) {
    if (buffer !== null) return void buffer.push(push);
    const { route, payload, headers } = push;
    if (headers.subscription !== last.subscription) last = { subscription: headers.subscription, seq: 0 };
    const gap = headers.seq !== last.seq + 1; // seq: 1, 2, 3... per subscribe request
    last.seq = headers.seq;
    if (route === "resync" || gap) return void relist();
    if (route === "created" || route === "updated") {
      if (headers.etag !== undefined && etags.get(payload.id) === headers.etag) return; // sent again, unchanged
      items.set(payload.id, payload);
      etags.set(payload.id, headers.etag);
    } else if (route === "deleted") {
      items.delete(payload.id);
      etags.delete(payload.id);
    } else return; // "unsubscribed": the server ended it
    onChange(route, items);
  }

  // After a reconnect the client subscribes again with `resume-from` (its last position). A reply
  // without `resumed` was no resume (a server that keeps no history): list again. `resumed: false`
  // is followed by a `resync` push, and `resumed: true` by what changed meanwhile: apply() does both.
  const subscription = socket.subscribe("subscribe", {
    payload: query,
    onResubscribed(reply) {
      if (reply.status === 201 && reply.headers?.resumed === undefined) relist();
    },
  }, apply);
  const ready = subscription.ready.then((reply) => { // subscribe first, list after: no change falls between
    if (reply.status !== 201) throw new Error(`subscribe answered ${reply.status}`);
    return relist();
  });
  return { items, subscription, ready, relist };
}
