"""Finding module:function, and the loud errors when it is not there."""

from __future__ import annotations

from pathlib import Path

import pytest

from ember_runtime.errors import LoadError, LoadFault
from ember_runtime.loader import is_async_handler, load_target, parse_target

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("spec", ["main", "main:", ":handle", "main:not-ident", "ma-in:handle"])
def test_bad_targets(spec: str) -> None:
    with pytest.raises(LoadError) as exc:
        parse_target(spec)
    assert exc.value.fault is LoadFault.INVALID_TARGET


def test_parse_target() -> None:
    t = parse_target("pkg.mod:handle")
    assert (t.module, t.function) == ("pkg.mod", "handle")


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_load_from_source_file(tmp_path: Path) -> None:
    src = write(tmp_path, "fn_ok_unit.py", "def handle(event, context):\n    return event\n")
    fn = load_target("fn_ok_unit:handle", src)
    assert fn(3, None) == 3
    assert not is_async_handler(fn)


def test_async_handler_is_detected(tmp_path: Path) -> None:
    src = write(tmp_path, "fn_async_unit.py", "async def handle(event, context):\n    return 1\n")
    assert is_async_handler(load_target("fn_async_unit:handle", src))


def test_missing_function_lists_what_was_found(tmp_path: Path) -> None:
    src = write(
        tmp_path,
        "fn_missing_unit.py",
        "import os\nX = 1\ndef main(e, c): pass\ndef other(e, c): pass\n",
    )
    with pytest.raises(LoadError) as exc:
        load_target("fn_missing_unit:handle", src)
    assert exc.value.fault is LoadFault.HANDLER_NOT_FOUND
    assert "named 'handle'" in exc.value.message
    assert "Found: main, other" in exc.value.message


def test_not_callable_is_not_a_handler(tmp_path: Path) -> None:
    src = write(tmp_path, "fn_notcallable_unit.py", "handle = 3\n")
    with pytest.raises(LoadError) as exc:
        load_target("fn_notcallable_unit:handle", src)
    assert exc.value.fault is LoadFault.HANDLER_NOT_FOUND


def test_module_name_must_match_source(tmp_path: Path) -> None:
    src = write(tmp_path, "fn_name_unit.py", "def handle(e, c): pass\n")
    with pytest.raises(LoadError) as exc:
        load_target("other:handle", src)
    assert exc.value.fault is LoadFault.INVALID_TARGET
    assert "fn_name_unit:handle" in exc.value.message


def test_import_error_in_user_code(tmp_path: Path) -> None:
    src = write(tmp_path, "fn_raises_unit.py", "raise RuntimeError('at import')\n")
    with pytest.raises(LoadError) as exc:
        load_target("fn_raises_unit:handle", src)
    assert exc.value.fault is LoadFault.IMPORT_ERROR
    assert "RuntimeError: at import" in exc.value.message


def test_syntax_error(tmp_path: Path) -> None:
    src = write(tmp_path, "fn_syntax_unit.py", "def handle(:\n")
    with pytest.raises(LoadError) as exc:
        load_target("fn_syntax_unit:handle", src)
    assert exc.value.fault is LoadFault.SYNTAX_ERROR
    assert "line 1" in exc.value.message


def test_missing_source_lists_the_directory(tmp_path: Path) -> None:
    write(tmp_path, "present.py", "")
    with pytest.raises(LoadError) as exc:
        load_target("main:handle", str(tmp_path / "main.py"))
    assert exc.value.fault is LoadFault.SOURCE_NOT_FOUND
    assert "present.py" in exc.value.message


def test_module_not_on_path() -> None:
    with pytest.raises(LoadError) as exc:
        load_target("no_such_module_for_ember_unit:handle")
    assert exc.value.fault is LoadFault.MODULE_NOT_FOUND
