from modelyard.governance.testing import catalog, governance  # noqa: F401  (fixtures)
