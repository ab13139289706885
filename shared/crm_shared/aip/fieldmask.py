"""Update field masks (AIP-134): which fields an Update may touch."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from crm_shared.errors import InvalidArgument, Violations


def resolve_update_mask(
    paths: Sequence[str],
    *,
    writable: Iterable[str],
    output_only: Iterable[str] = ("name", "create_time", "update_time", "etag"),
    field_prefix: str = "update_mask",
) -> frozenset[str]:
    """The set of writable top-level fields an update names.

    "*" means every writable field (a full replacement). Naming an output-only
    field or a field that does not exist is an error, so a typo never turns
    into a silent no-op.
    """
    writable_set, output_only_set = frozenset(writable), frozenset(output_only)
    if not paths:
        raise InvalidArgument.for_field(field_prefix, "name at least one field to update, or '*'")
    if "*" in paths:
        if len(paths) > 1:
            raise InvalidArgument.for_field(field_prefix, "'*' cannot be combined with other paths")
        return writable_set
    violations = Violations()
    chosen: set[str] = set()
    for index, path in enumerate(paths):
        top = path.split(".", 1)[0]
        if top in output_only_set:
            violations.add(f"{field_prefix}.paths[{index}]", f"{path!r} is output only and cannot be updated")
        elif top not in writable_set:
            violations.add(
                f"{field_prefix}.paths[{index}]",
                f"unknown or read-only field {path!r}; updatable: {', '.join(sorted(writable_set))}",
            )
        else:
            chosen.add(top)
    violations.raise_if_any("update_mask names fields that cannot be updated")
    return frozenset(chosen)
