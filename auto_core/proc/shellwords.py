"""Recognising a command that needs no shell: ``uvicorn main:app --port 8000``.

``/bin/sh -c COMMAND`` costs a second shell ``exec`` and, with dash, leaves that shell as the
service's leader with the program as its child. For a command that is one simple command
without any shell syntax the result is the same as ``exec`` of its words, so the spawner
execs the words directly (itself, or from its header prologue): the recorded pid is the
program's own, one exec (or two) and one fork fewer per start. Anything else (``$``, globs, redirections, ``;``, ``&&``, a builtin,
a variable assignment, backslashes, a newline outside quotes ...) returns None and goes
through ``sh -c`` unchanged. The check is deliberately conservative: a false "needs a shell"
only costs the exec it would have saved.
"""

from __future__ import annotations

# Characters that mean nothing to sh outside quotes (besides blanks between words).
_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-")
# Inside double quotes sh still expands these.
_DQ_SPECIAL = frozenset('$`\\')
# POSIX reserved words and every dash builtin: these are not programs ``exec`` can run, or
# they behave differently as one.
_SHELL_WORDS = frozenset(
    "! { } case do done elif else esac fi for if in then until while "
    ". : [ alias bg break cd chdir command continue echo eval exec exit export false fg "
    "getopts hash jobs kill local printf pwd read readonly return set shift test times "
    "trap true type ulimit umask unalias unset wait".split()
)


def simple_argv(command: str) -> list[str] | None:
    """The argv ``sh -c command`` would exec, when ``command`` is that plain; else None.

    A leading ``exec`` word is dropped (``exec sleep 5`` runs ``sleep 5``, as the shell would).
    """
    words: list[str] = []
    word: list[str] = []
    in_word = False
    quote = ""
    for ch in command:
        if quote == "'":
            if ch == "'":
                quote = ""
            else:
                word.append(ch)
        elif quote == '"':
            if ch == '"':
                quote = ""
            elif ch in _DQ_SPECIAL:
                return None
            else:
                word.append(ch)
        elif ch in " \t":
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
        elif ch in "'\"":
            quote, in_word = ch, True
        elif ch in _PLAIN:
            word.append(ch)
            in_word = True
        else:
            return None
    if quote:
        return None
    if in_word:
        words.append("".join(word))
    if words and words[0] == "exec":
        words = words[1:]
    if not words or not words[0] or words[0] in _SHELL_WORDS or "=" in words[0]:
        return None
    return words
