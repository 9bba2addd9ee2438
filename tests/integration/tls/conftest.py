"""TLS tests: certificates from tests/fixtures/certs.py (openssl CLI)."""

from tests.fixtures.certs import other_pki, pki

__all__ = ["other_pki", "pki"]
