pytest_plugins = ["modelyard.testing.plugin"]
