"""validate_custom_fields: the pure check every customer write (and import) goes through."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crm_customer.domain.custom_fields import (
    CustomFieldDefinition,
    DefinitionInput,
    FieldType,
    ResourceType,
    new_definition,
    validate_custom_fields,
)
from crm_shared.errors import InvalidArgument

NOW = datetime(2026, 11, 22, tzinfo=UTC)


def definition(key: str, kind: FieldType, **extra) -> CustomFieldDefinition:
    return CustomFieldDefinition(
        id=f"id-{key}",
        resource_type=ResourceType.CUSTOMERS,
        key=key,
        type=kind,
        create_time=NOW,
        update_time=NOW,
        **extra,
    )


DEFINITIONS = [
    definition("budget", FieldType.NUMBER, required=True),
    definition("signed_on", FieldType.DATE),
    definition("vip", FieldType.BOOL),
    definition("segment", FieldType.ENUM, allowed_values=["smb", "enterprise"]),
    definition("channels", FieldType.MULTI_ENUM, allowed_values=["email", "phone", "wechat"]),
    definition("motto", FieldType.TEXT),
]


def test_good_values_are_normalized():
    values, violations = validate_custom_fields(
        DEFINITIONS,
        {
            "budget": 12000.0,
            "signed_on": " 2026-03-01 ",
            "vip": True,
            "segment": "smb",
            "channels": ["email", "wechat", "email"],
            "motto": "  go  ",
        },
    )
    assert violations == []
    assert values == {
        "budget": 12000,
        "signed_on": "2026-03-01",
        "vip": True,
        "segment": "smb",
        "channels": ["email", "wechat"],
        "motto": "go",
    }
    assert isinstance(values["budget"], int)


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("budget", "12000", "must be a number"),
        ("budget", True, "must be a number"),
        ("budget", float("inf"), "finite"),
        ("signed_on", "2026-02-30", "not a calendar date"),
        ("signed_on", "01/02/2026", "must be a date"),
        ("vip", "yes", "true or false"),
        ("segment", "huge", "must be one of: smb, enterprise"),
        ("channels", "email", "must be a list"),
        ("channels", ["email", "fax"], "must be one of"),
        ("motto", 42, "must be a string"),
        ("motto", "x" * 1001, "at most 1000"),
    ],
)
def test_each_type_names_the_bad_field(key, value, says):
    _, violations = validate_custom_fields(DEFINITIONS, {"budget": 1, key: value})
    assert [v.field for v in violations] == [f"customer.custom_fields.{key}"]
    assert says in violations[0].description


def test_unknown_keys_and_missing_required_are_reported_together():
    _, violations = validate_custom_fields(
        DEFINITIONS, {"colour": "red", "vip": "no"}, path="rows[3].custom_fields"
    )
    assert {v.field: v.description for v in violations} == {
        "rows[3].custom_fields.colour": violations[0].description,
        "rows[3].custom_fields.vip": "must be true or false",
        "rows[3].custom_fields.budget": "is required",
    }
    assert "not a defined custom field" in violations[0].description
    # An update that does not replace custom_fields as a whole need not repeat required ones.
    _, violations = validate_custom_fields(DEFINITIONS, {}, check_required=False)
    assert violations == []
    # Empty values count as absent.
    values, violations = validate_custom_fields(DEFINITIONS, {"budget": 5, "motto": "", "channels": []})
    assert (values, violations) == ({"budget": 5}, [])


def test_definitions_check_their_own_shape():
    with pytest.raises(InvalidArgument) as caught:
        new_definition(
            DefinitionInput(
                resource_type=ResourceType.CUSTOMERS, key="Bad Key", type=FieldType.ENUM, unique=False
            ),
            definition_id="x",
            now=NOW,
        )
    assert {v.field for v in caught.value.field_violations} == {
        "custom_field_definition.key",
        "custom_field_definition.allowed_values",
    }
    with pytest.raises(InvalidArgument) as caught:
        new_definition(
            DefinitionInput(
                resource_type=ResourceType.CUSTOMERS, key="flag", type=FieldType.BOOL, unique=True
            ),
            definition_id="x",
            now=NOW,
        )
    assert [v.field for v in caught.value.field_violations] == ["custom_field_definition.unique"]
    made = new_definition(
        DefinitionInput(resource_type=ResourceType.CUSTOMERS, key="tier_code", type=FieldType.TEXT),
        definition_id="x",
        now=NOW,
    )
    assert made.display_name == "tier_code" and made.name == "customFields/x"
