"""PII encryption, key rotation, AAD binding, blind indexes, normalization and masking."""

import pytest

from crm_shared.pii.codec import PersonalDataCodec
from crm_shared.pii.crypto import BlindIndex, DecryptionError, KeyRing, field_aad, generate_key
from crm_shared.pii.normalize import (
    NormalizationError,
    mask_email,
    mask_phone,
    normalize_email,
    normalize_phone,
    normalize_tax_id,
)


def test_round_trip_and_no_plaintext_in_ciphertext():
    ring = KeyRing.from_spec(f"k1:{generate_key()}")
    blob = ring.encrypt(b"alice@example.com", field_aad("customers", "emails", "id1"))
    assert b"alice" not in blob
    assert ring.decrypt(blob, field_aad("customers", "emails", "id1")) == b"alice@example.com"


def test_ciphertext_moved_to_another_row_does_not_decrypt():
    ring = KeyRing.from_spec(f"k1:{generate_key()}")
    blob = ring.encrypt(b"secret", field_aad("customers", "emails", "id1"))
    with pytest.raises(DecryptionError):
        ring.decrypt(blob, field_aad("customers", "emails", "id2"))


def test_rotation_old_ciphertexts_still_open_new_ones_use_the_new_key():
    old_key, new_key = generate_key(), generate_key()
    old_ring = KeyRing.from_spec(f"k1:{old_key}")
    blob = old_ring.encrypt(b"x", b"aad")
    rotated = KeyRing.from_spec(f"k2:{new_key},k1:{old_key}")
    assert rotated.decrypt(blob, b"aad") == b"x"
    assert rotated.needs_rotation(blob)
    assert rotated.key_id_of(rotated.encrypt(b"x", b"aad")) == "k2"
    # Dropping the old key (crypto-shredding) makes old data unreadable.
    with pytest.raises(DecryptionError):
        KeyRing.from_spec(f"k2:{new_key}").decrypt(blob, b"aad")


def test_key_ring_spec_errors():
    with pytest.raises(ValueError, match="empty"):
        KeyRing.from_spec("")
    with pytest.raises(ValueError, match="32 bytes"):
        KeyRing.from_spec("k1:c2hvcnQ=")


def test_blind_index_is_deterministic_keyed_and_kind_separated():
    key = generate_key()
    index = BlindIndex(key)
    assert index.digest("email", "a@b.c") == BlindIndex(key).digest("email", "a@b.c")
    assert index.digest("email", "a@b.c") != BlindIndex(generate_key()).digest("email", "a@b.c")
    assert index.digest("email", "123") != index.digest("phone", "123")


def test_subject_data_keys_seal_open_shred_and_rotate():
    old_key = generate_key()
    codec = PersonalDataCodec(KeyRing.from_spec(f"k1:{old_key}"), BlindIndex(generate_key()))
    cipher, wrapped = codec.new_data_key("cust-1")
    assert cipher.seal([], table="t", column="c", row_id="r") is None
    sealed = cipher.seal([["+8613800138000", "mobile"]], table="t", column="c", row_id="r")
    assert b"8613800138000" not in sealed
    assert codec.cipher(wrapped, "cust-1").open(sealed, table="t", column="c", row_id="r") == [
        ["+8613800138000", "mobile"]
    ]
    # The wrapped key only opens for its own subject.
    with pytest.raises(DecryptionError):
        codec.cipher(wrapped, "cust-2")
    # Erased (no key): fields read as absent, and nothing new can be sealed.
    shredded = codec.cipher(None, "cust-1")
    assert shredded.open(sealed, table="t", column="c", row_id="r", default=[]) == []
    assert shredded.seal([], table="t", column="c", row_id="r") is None  # non-personal saves still work
    with pytest.raises(DecryptionError):
        shredded.seal("x", table="t", column="c", row_id="r")
    # Rotation re-wraps the data key only; old data still opens under the new ring.
    rotated = PersonalDataCodec(KeyRing.from_spec(f"k2:{generate_key()},k1:{old_key}"), codec.blind_index)
    rewrapped = rotated.rewrap(wrapped, "cust-1")
    assert rewrapped is not None and rotated.key_ring.key_id_of(rewrapped) == "k2"
    assert rotated.rewrap(rewrapped, "cust-1") is None
    assert rotated.cipher(rewrapped, "cust-1").open(sealed, table="t", column="c", row_id="r")


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("138 0013 8000", "CN", "+8613800138000"),
        ("+86 138-0013-8000", "US", "+8613800138000"),
        ("(415) 555-0100", "US", "+14155550100"),
    ],
)
def test_phone_normalization(raw, region, expected):
    assert normalize_phone(raw, region) == expected


def test_bad_contact_points():
    with pytest.raises(NormalizationError):
        normalize_phone("not a phone")
    with pytest.raises(NormalizationError):
        normalize_email("no-at-sign")


def test_email_and_tax_id_normalization_and_masks():
    assert normalize_email("  Alice@Example.COM ") == "alice@example.com"
    assert normalize_tax_id("91310000-mA1fl 4xx2") == "91310000MA1FL4XX2"
    assert mask_email("alice@example.com") == "a***@example.com"
    assert mask_phone("+8613800138000") == "+86*******8000"
