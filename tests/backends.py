class OwnerObjectPermissionBackend:
    """Grants every object permission on a Note to its owner (as django-guardian would per object)."""

    def authenticate(self, request, **credentials):
        return None

    def has_perm(self, user, perm, obj=None):
        return obj is not None and getattr(obj, "owner_id", None) == user.pk and user.is_active
