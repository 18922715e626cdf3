"""`modelyard backup`: one archive holding a consistent snapshot of every service's database, the registry's
artifacts, the signing keys, the governance audit export and a manifest of digests (see docs/operations.md)."""
