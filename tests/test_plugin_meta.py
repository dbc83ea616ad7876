"""Meta-tests of the plugin system: every hook is documented in docs/plugins.md with its exact signature and has
a ``test_hook_<name>`` test, and every plugin module in the repository holds only hook implementations."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest
from optiq import hookspecs, plugins

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "plugins.md"
HOOKS = {name: f for name, f in vars(hookspecs).items() if hasattr(f, "optiq_spec")}
REGISTRARS = [hookspecs.LoaderRegister, hookspecs.FormatRegister, hookspecs.Register]


class _Raw:
    """An annotation printed as written in the source (hookspecs uses postponed annotations: strings)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def signature_text(fn, name: str | None = None) -> str:
    """``name(arg: Type, ...) -> Ret`` from inspect.signature, as docs/plugins.md must show it."""
    sig = inspect.signature(fn)
    params = [p.replace(annotation=_Raw(p.annotation)) for p in sig.parameters.values() if p.name != "self"]
    sig = sig.replace(parameters=params, return_annotation=_Raw(sig.return_annotation))
    return f"{name or fn.__name__}{sig}"


def test_the_six_hooks_and_the_manager_agree():
    assert set(HOOKS) == set(plugins.HOOKS) == {
        "optiq_register_loaders", "optiq_register_formats", "optiq_register_models",
        "optiq_register_adapters", "optiq_register_renderers", "optiq_register_commands"}
    assert set(plugins.KINDS) == set(HOOKS) - {"optiq_register_commands"}


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_hook_is_documented_with_its_exact_signature(name):
    docs = DOCS.read_text()
    assert f"### {name}\n" in docs, f"docs/plugins.md has no section '### {name}'"
    text = signature_text(HOOKS[name])
    assert f"    {text}\n" in docs, f"docs/plugins.md does not show the signature: {text}"
    assert (HOOKS[name].__doc__ or "").strip(), f"hook {name} has no docstring"
    assert inspect.signature(HOOKS[name]).parameters, f"hook {name} takes no registrar"


@pytest.mark.parametrize("protocol", REGISTRARS, ids=lambda p: p.__name__)
def test_registrar_is_documented_with_its_exact_signature(protocol):
    text = signature_text(protocol.__call__, "register")
    assert f"    {text}\n" in DOCS.read_text(), f"docs/plugins.md does not show {protocol.__name__}: {text}"


def _test_functions() -> set[str]:
    files = [*ROOT.glob("tests/**/test_*.py"), *ROOT.glob("*/tests/**/test_*.py")]
    return {m for f in files for m in re.findall(r"^def (test_\w+)\(", f.read_text(), re.M)}


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_hook_has_a_test(name):
    assert f"test_hook_{name}" in _test_functions(), f"no test function test_hook_{name} under tests/"


def _plugin_modules() -> list[Path]:
    found = [*ROOT.glob("*/src/*/plugin.py"), *ROOT.glob("tests/plugins/*/src/*/plugin.py")]
    return sorted(p for p in found if "optiq-broken-plugin" not in p.parts)


@pytest.mark.parametrize("path", _plugin_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_plugin_module_holds_only_hook_implementations(path):
    """ARCHITECTURE.md: plugin.py holds only @optiq.hookimpl functions and lazy "module:attr" strings, so that
    listing plugins imports none of their heavy dependencies."""
    tree = ast.parse(path.read_text())
    body = tree.body[1:] if ast.get_docstring(tree) else tree.body
    for node in body:
        where = f"{path.name}:{node.lineno}"
        if isinstance(node, ast.ImportFrom) and node.level:
            # core's own plugin: `from . import hookimpl` (the optiq package itself)
            assert (node.module, [a.name for a in node.names]) == (None, ["hookimpl"]), f"{where}: relative import"
        elif isinstance(node, ast.ImportFrom | ast.Import):
            modules = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            assert all(m in ("__future__", "optiq") for m in modules), f"{where}: top-level import of {modules}"
        elif isinstance(node, ast.FunctionDef):
            decorators = [ast.unparse(d) for d in node.decorator_list]
            assert decorators in (["optiq.hookimpl"], ["hookimpl"]), f"{where}: {node.name} is not a hookimpl"
            assert node.name in HOOKS, f"{where}: {node.name} is not an optiq hook"
        else:
            pytest.fail(f"{where}: only imports and hook implementations belong in plugin.py")


def test_the_repository_has_plugin_modules():
    names = {str(p.relative_to(ROOT)) for p in _plugin_modules()}
    assert {"optiq-core/src/optiq/plugin.py",
            "tests/plugins/optiq-example-plugin/src/optiq_example_plugin/plugin.py"} <= names
