"""Authentication: verifying the bearer JWTs every call carries (minting lives in dev_keys)."""

from crm_shared.auth.jwt import JwtVerifier

__all__ = ["JwtVerifier"]
