import pytest

from harness.registry import REGISTRY, Registry, RegistryError


def test_builtins_listed_without_importing_them():
    assert {"zs", "cocoft", "chatir", "clip", "oracle", "random"} <= set(REGISTRY.names("retriever"))
    assert REGISTRY.describe("retriever", "chatir") == "retrievers.dual_encoders.retriever:chatir"


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


def test_every_registered_target_and_suite_resolves():
    from harness.registry import KINDS

    for kind in KINDS:
        for name in REGISTRY.names(kind):
            assert callable(REGISTRY.resolve(kind, name)), (kind, name)
    from benchmarks.known import KNOWN_BENCHMARKS

    assert REGISTRY.suite("benchmark", "all") == tuple(KNOWN_BENCHMARKS)
    assert set(REGISTRY.suite("benchmark", "all")) < set(REGISTRY.names("benchmark"))
    with pytest.raises(RegistryError, match="no benchmark suite named 'some'"):
        REGISTRY.suite("benchmark", "some")


def test_a_suite_naming_an_unregistered_entry_is_refused():
    registry = Registry()
    registry.add("benchmark", "one", lambda: 1)
    registry.add_suite("benchmark", "pair", ("one", "two"))
    with pytest.raises(RegistryError, match="no benchmark named 'two'"):
        registry.suite("benchmark", "pair")


def test_every_lazy_subcommand_resolves():
    import click

    from harness.cli import main
    from harness.command_line import LazyGroup

    reached = []

    def walk(group: click.Group, path: tuple[str, ...]) -> None:
        context = click.Context(group, info_name=path[-1])
        for name in group.list_commands(context):
            command = group.get_command(context, name)
            assert isinstance(command, click.Command), (*path, name)
            reached.append(" ".join((*path, name)))
            if isinstance(command, click.Group):
                walk(command, (*path, name))

    walk(main, ("harness",))
    lazy = [f"harness {name}" for name in main.lazy_subcommands]
    lazy += [f"harness {group} {name}" for group in ("bench", "train", "dar")
             for name in getattr(main.get_command(click.Context(main), group), "lazy_subcommands", {})]
    assert isinstance(main.get_command(click.Context(main), "bench"), LazyGroup)
    assert set(lazy) <= set(reached) and len(lazy) >= 15


def test_an_argument_of_the_wrong_type_is_refused_by_name_before_building():
    registry = Registry()
    built = []

    def factory(tokens: int = 8, scale: float = 1.0, label: str | None = None, flag: bool = False, items: list = ()):
        built.append(1)
        return tokens

    registry.add("questioner", "toy", factory)
    with pytest.raises(RegistryError, match=r"questioner 'toy': argument tokens='abc' is not int"):
        registry.build("questioner", "toy", tokens="abc")
    with pytest.raises(RegistryError, match="argument tokens=True is not int"):
        registry.build("questioner", "toy", tokens=True)
    with pytest.raises(RegistryError, match="argument label=3 is not str"):
        registry.build("questioner", "toy", label=3)
    assert built == []
    assert registry.build("questioner", "toy", tokens=3, scale=2, label=None, flag=True, items=[1])[0] == 3


def test_a_cli_argument_of_the_wrong_type_is_a_clear_error(small_benchmark, tmp_path):
    from click.testing import CliRunner

    from harness.cli import main

    result = CliRunner().invoke(main, ["run", "--retriever", "oracle", "--questioner", "flan", "--questioner-arg",
                                       "max_new_tokens=abc", "--answerer", "scripted", "--benchmark",
                                       str(small_benchmark.dialogues), "--search-space", str(small_benchmark.search_space),
                                       "--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 2
    assert "error: questioner 'flan': argument max_new_tokens='abc' is not int" in result.output
