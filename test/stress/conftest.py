"""The stress tests reuse the integration tests' Server and fixtures (test/integration/conftest.py),
loaded under the name ds_conftest so the two conftest modules do not collide."""
import importlib.util
import pathlib
import sys

_path = pathlib.Path(__file__).resolve().parents[1] / "integration" / "conftest.py"
_spec = importlib.util.spec_from_file_location("ds_conftest", _path)
ds_conftest = importlib.util.module_from_spec(_spec)
sys.modules["ds_conftest"] = ds_conftest
_spec.loader.exec_module(ds_conftest)

server_factory = ds_conftest.server_factory  # noqa: F401 -- a pytest fixture
