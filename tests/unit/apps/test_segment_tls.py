"""The TLS settings shared by Test connection's clients: made once, and still verifying."""

from __future__ import annotations

import ssl

from segbridge.apps.segment.client import tls_context


def test_one_context_for_the_process() -> None:
    assert tls_context() is tls_context()


def test_it_verifies_certificates_and_host_names_against_a_ca_bundle() -> None:
    context = tls_context()

    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert context.cert_store_stats()["x509_ca"] > 100  # certifi's bundle, not an empty store
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
