"""Normalization of contact points, so equal emails/phones compare (and blind-index) equal."""

from __future__ import annotations

import phonenumbers
from email_validator import EmailNotValidError, validate_email


class NormalizationError(ValueError):
    pass


def normalize_phone(raw: str, default_region: str = "CN") -> str:
    """E.164, e.g. "+8613800138000". Numbers without a country code use default_region."""
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException as exc:
        raise NormalizationError(f"not a phone number: {exc}") from None
    # IS_POSSIBLE only: a number that can be dialled locally only (too short for E.164) is refused.
    if phonenumbers.is_possible_number_with_reason(number) != phonenumbers.ValidationResult.IS_POSSIBLE:
        raise NormalizationError("not a complete phone number (include the area code)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(raw: str) -> str:
    """Lower-cased and syntax-checked (no DNS lookups: this must work offline and fast)."""
    try:
        result = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise NormalizationError(str(exc)) from None
    return result.normalized.lower()


def normalize_tax_id(raw: str) -> str:
    """Upper-case, without spaces and dashes (e.g. Chinese unified social credit codes)."""
    return "".join(ch for ch in raw.upper() if ch.isalnum())


def mask_email(email: str) -> str:
    """ "alice@example.com" -> "a***@example.com"."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


def mask_phone(phone: str) -> str:
    """ "+8613800138000" -> "+86*******8000": enough to recognise, not to dial."""
    if len(phone) <= 7:
        return "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]
