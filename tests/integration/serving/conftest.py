from modelyard.serving.testing import breast_cancer, harness, repository, service  # noqa: F401  (fixtures)
