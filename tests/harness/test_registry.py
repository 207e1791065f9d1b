import pytest

from harness.registry import REGISTRY, Registry, RegistryError


def test_builtins_listed_without_importing_them():
    assert {"zs", "cocoft", "chatir", "clip", "oracle", "random"} <= set(REGISTRY.names("retriever"))
    assert REGISTRY.describe("retriever", "chatir") == "retrievers.dual_encoder:chatir"


def test_typo_gets_did_you_mean():
    with pytest.raises(RegistryError, match="did you mean 'oracle'"):
        REGISTRY.resolve("retriever", "oracel")


def test_build_records_passed_and_resolved_arguments():
    registry = Registry()

    def factory(size: int, scale: float = 2.0):
        return size * scale

    registry.add("retriever", "toy", factory)
    value, record = registry.build("retriever", "toy", size=3)
    assert value == 6.0
    assert record.arguments == {"size": 3}
    assert record.resolved_arguments == {"size": 3, "scale": 2.0}
    with pytest.raises(RegistryError, match="it takes: size, scale"):
        registry.build("retriever", "toy", colour="red")


def test_one_file_plugin_registers_itself(tmp_path):
    plugin = tmp_path / "my_retriever.py"
    plugin.write_text(
        "from harness.registry import register\n"
        "@register('retriever', 'plugin-test-constant')\n"
        "def build(rank: int = 1):\n    return rank\n"
    )
    REGISTRY.load_plugin(str(plugin))
    assert REGISTRY.build("retriever", "plugin-test-constant")[0] == 1
