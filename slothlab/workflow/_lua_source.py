"""Find the source text of a task's Lua ``command`` in its script, so it can be sent to an agent.

A Lua closure cannot cross a process boundary, and the sandbox offers no ``debug.getinfo``; so
the text of the command is found in the script by a small Lua tokenizer. Recognised forms:

* ``task("NAME") ... :command(function (...) ... end)`` (the builder chain),
* ``{ name = "NAME", command = function (...) ... end }`` (the table form),
* either form with ``command = fn`` / ``:command(fn)`` where ``fn`` is defined once in the file
  by ``local function fn(...)``, ``function fn(...)`` or ``local fn = function (...)``.

The function must be self-contained: a local variable of the script it uses (an upvalue) does
not travel, and :func:`command_source` refuses it by name. Values reach the agent through
``params`` and ``inputs``.

>>> script = '''local WORK = "/tmp"
... local t = task("hello"):command(function(this, params)
...     return true, "hi " .. params.who
... end):build()'''
>>> command_source(script, "hello").text
'function(this, params)\\n    return true, "hi " .. params.who\\nend'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from slothlab.errors import WorkflowError

__all__ = ["CommandSource", "command_source", "tokenize"]

_KEYWORDS = frozenset(
    {"and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
     "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while"}
)  # fmt: skip
_OPENERS = frozenset({"function", "if", "do", "repeat"})
_CLOSERS = frozenset({"end", "until"})
_TOKEN = re.compile(
    r"""(?P<space>\s+)
    |(?P<comment>--(?:\[(?P<ceq>=*)\[[\s\S]*?\](?P=ceq)\]|[^\n]*))
    |(?P<long>\[(?P<leq>=*)\[[\s\S]*?\](?P=leq)\])
    |(?P<str>"(?:\\[\s\S]|[^"\\\n])*"|'(?:\\[\s\S]|[^'\\\n])*')
    |(?P<num>0[xX][0-9a-fA-F.]+(?:[pP][+-]?\d+)?|\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)
    |(?P<name>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<op>\.\.\.|\.\.|==|~=|<=|>=|<<|>>|//|::|[-+*/%^#&~|<>=(){}\[\];:,.])""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    """One Lua token: ``kind`` is name, str, long, num or op; ``start``/``end`` are offsets."""

    kind: str
    text: str
    start: int
    end: int
    line: int


@dataclass(frozen=True)
class CommandSource:
    """A command's Lua text and the line of the script it starts on."""

    text: str
    line: int


def tokenize(code: str) -> list[Token]:
    """The tokens of a Lua chunk (comments and spaces dropped).

    Raises:
        WorkflowError: a character no Lua token starts with (an unfinished string, ...).
    """
    tokens: list[Token] = []
    pos, line = 0, 1
    while pos < len(code):
        m = _TOKEN.match(code, pos)
        if m is None:
            raise WorkflowError(
                f"line {line}: cannot read the script here: {code[pos : pos + 20]!r}"
            )
        kind = m.lastgroup or "op"
        if kind in ("ceq", "leq"):  # named inner groups: the outer one is what matched
            kind = "comment" if m.group("comment") else "long"
        if kind not in ("space", "comment"):
            tokens.append(Token(kind, m.group(), m.start(), m.end(), line))
        line += m.group().count("\n")
        pos = m.end()
    return tokens


def _string_value(token: Token) -> str | None:
    if token.kind == "str":
        return token.text[1:-1]
    if token.kind == "long":
        return token.text[token.text.index("[", 1) + 1 : token.text.rindex("]", 0, -1)]
    return None


def _matching_end(tokens: list[Token], start: int) -> int:
    """Index of the ``end`` that closes the ``function`` at ``start``."""
    depth = 0
    for i in range(start, len(tokens)):
        tok = tokens[i]
        if tok.kind != "name":
            continue
        if tok.text in _OPENERS:
            depth += 1
        elif tok.text in _CLOSERS:
            depth -= 1
            if depth == 0:
                return i
    raise WorkflowError("a function in the script has no matching 'end'")


def _matching_bracket(tokens: list[Token], start: int) -> int:
    pairs = {"(": ")", "{": "}", "[": "]"}
    stack: list[str] = []
    for i in range(start, len(tokens)):
        text = tokens[i].text if tokens[i].kind == "op" else ""
        if text in pairs:
            stack.append(pairs[text])
        elif stack and text == stack[-1]:
            stack.pop()
            if not stack:
                return i
    return len(tokens) - 1


def _is(tokens: list[Token], i: int, *texts: str) -> bool:
    return all(
        i + k < len(tokens) and tokens[i + k].text == t and tokens[i + k].kind in ("op", "name")
        for k, t in enumerate(texts)
    )


def _builder_commands(tokens: list[Token], name: str) -> list[int]:
    """Indexes of the token after ``:command(`` in chains that start with ``task("name")``."""
    found = []
    for i, tok in enumerate(tokens):
        if not (tok.text == "task" and _is(tokens, i + 1, "(")):
            continue
        if i + 3 >= len(tokens) or _string_value(tokens[i + 2]) != name:
            continue
        j = _matching_bracket(tokens, i + 1) + 1
        while _is(tokens, j, ":") and j + 2 < len(tokens) and _is(tokens, j + 2, "("):
            if tokens[j + 1].text == "command":
                found.append(j + 3)
                break
            j = _matching_bracket(tokens, j + 2) + 1
    return found


def _table_commands(tokens: list[Token], name: str) -> list[int]:
    """Indexes of the token after ``command =`` in table constructors naming the task."""
    found = []
    for i, tok in enumerate(tokens):
        keyed = tok.text == "name" and _is(tokens, i + 1, "=")
        if not (keyed and i + 2 < len(tokens) and _string_value(tokens[i + 2]) == name):
            continue
        opener = _enclosing_brace(tokens, i)
        if opener is None:
            continue
        close = _matching_bracket(tokens, opener)
        depth = 0
        for j in range(opener + 1, close):
            text = tokens[j].text if tokens[j].kind == "op" else ""
            depth += text in ("(", "{", "[")
            depth -= text in (")", "}", "]")
            if depth == 0 and tokens[j].text == "command" and _is(tokens, j + 1, "="):
                found.append(j + 2)
    return found


def _enclosing_brace(tokens: list[Token], i: int) -> int | None:
    depth = 0
    for j in range(i - 1, -1, -1):
        text = tokens[j].text if tokens[j].kind == "op" else ""
        if text in (")", "}", "]"):
            depth += 1
        elif text in ("(", "{", "["):
            if depth == 0:
                return j if text == "{" else None
            depth -= 1
    return None


def _named_function(tokens: list[Token], fn: str) -> list[int]:
    """Indexes of the ``function`` token of definitions of ``fn`` (as ``function(...)``)."""
    found = []
    for i, tok in enumerate(tokens):
        if tok.text == "function" and i + 1 < len(tokens) and tokens[i + 1].text == fn:
            if _is(tokens, i + 2, "("):
                found.append(i)
        elif tok.text == "local" and _is(tokens, i + 1, fn, "=", "function"):
            found.append(i + 3)
    return found


def command_source(code: str, task: str) -> CommandSource:
    """The Lua text of task ``task``'s command in the script ``code`` (an anonymous function).

    Raises:
        WorkflowError: the command cannot be found (or is found more than once with different
            texts), or it uses a local variable of the script (named in the message).
    """
    tokens = tokenize(code)
    starts = _builder_commands(tokens, task) + _table_commands(tokens, task)
    fn_starts: list[int] = []
    for start in starts:
        tok = tokens[start] if start < len(tokens) else None
        if tok is not None and tok.text == "function":
            fn_starts.append(start)
        elif tok is not None and tok.kind == "name":
            fn_starts.extend(_named_function(tokens, tok.text))
    texts = {_function_text(code, tokens, s) for s in fn_starts}
    if len(texts) != 1:
        why = "cannot find" if not texts else "found several definitions of"
        raise WorkflowError(
            f"task {task!r}: {why} its Lua command in the script, so it cannot be sent to an "
            'agent; write it as task("NAME"):command(function(this, params, inputs) ... end) '
            'or { name = "NAME", command = function ... end }, or use a shell command string'
        )
    source = texts.pop()
    _refuse_upvalues(tokens, source, task)
    return source


def _function_text(code: str, tokens: list[Token], start: int) -> CommandSource:
    end = _matching_end(tokens, start)
    first = start + 1
    if tokens[first].kind == "name":  # "function name(...)": keep it anonymous
        first += 1
    body = code[tokens[first].start : tokens[end].end]
    return CommandSource("function" + body, tokens[start].line)


def _refuse_upvalues(tokens: list[Token], source: CommandSource, task: str) -> None:
    inner = tokenize(source.text)
    own = _declared(inner)
    script_locals = _declared(tokens) - own
    used = _references(inner)
    travel = sorted(used & script_locals)
    if travel:
        names = ", ".join(travel)
        raise WorkflowError(
            f"task {task!r}: its command uses {names}, local to the script, which does not travel "
            "to the agent; pass the value in params (:params{...}) or compute it in the command"
        )


def _declared(tokens: list[Token]) -> set[str]:
    """Names declared with ``local``, as parameters, or as ``for`` variables."""
    names: set[str] = set()
    for i, tok in enumerate(tokens):
        if tok.text == "local" and tok.kind == "name":
            j = i + 1 + (i + 1 < len(tokens) and tokens[i + 1].text == "function")
            names.update(_name_list(tokens, j))
        elif tok.text == "for" and tok.kind == "name":
            names.update(_name_list(tokens, i + 1))
        elif tok.text == "function" and tok.kind == "name":
            j = i + 1
            while j < len(tokens) and tokens[j].text != "(":
                j += 1
            names.update(_name_list(tokens, j + 1))
    return names


def _name_list(tokens: list[Token], j: int) -> list[str]:
    names = []
    while j < len(tokens) and tokens[j].kind == "name" and tokens[j].text not in _KEYWORDS:
        names.append(tokens[j].text)
        if j + 2 < len(tokens) and tokens[j + 1].text == "<":  # <const>, <close>
            j += 3
        if not _is(tokens, j + 1, ","):
            break
        j += 2
    return names


def _references(tokens: list[Token]) -> set[str]:
    """Names read or assigned (not field names after ``.``/``:`` nor table keys)."""
    used: set[str] = set()
    braces: list[str] = []
    for i, tok in enumerate(tokens):
        if tok.kind == "op" and tok.text in ("(", "{", "["):
            braces.append(tok.text)
        elif tok.kind == "op" and tok.text in (")", "}", "]") and braces:
            braces.pop()
        if tok.kind != "name" or tok.text in _KEYWORDS:
            continue
        if i > 0 and tokens[i - 1].text in (".", ":") and tokens[i - 1].kind == "op":
            continue
        if braces and braces[-1] == "{" and _is(tokens, i + 1, "="):
            continue
        used.add(tok.text)
    return used
