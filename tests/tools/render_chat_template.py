#!/usr/bin/env python3
"""Reference renderer for the chat-template tests: renders Jinja2 templates exactly as Hugging Face
transformers renders chat templates (ImmutableSandboxedEnvironment with trim_blocks=True,
lstrip_blocks=True and the loopcontrols extension; raise_exception, strftime_now and tojson as
transformers defines them).

    render_chat_template.py IN.json OUT.json

IN.json is a list of {"template": str, "context": {...}}; OUT.json gets, for each, {"text": str}
or {"error": "..."}. Exit status 3 when jinja2 cannot be imported (the tests then skip)."""
import json
import sys
from datetime import datetime

try:
    import jinja2
    import jinja2.ext
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment
except ImportError as e:  # pragma: no cover - reported to the caller
    print(f"jinja2 unavailable: {e}", file=sys.stderr)
    sys.exit(3)


def raise_exception(message):
    raise TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    # transformers' definition: json.dumps without the HTML escaping of Jinja's own tojson.
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(format):
    return datetime.now().strftime(format)


def environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        cases = json.load(f)
    env = environment()
    out = []
    for case in cases:
        try:
            out.append({"text": env.from_string(case["template"]).render(**case["context"])})
        except Exception as e:  # every failure is a result the C++ side compares against
            out.append({"error": f"{type(e).__name__}: {e}"})
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=True)


if __name__ == "__main__":
    main()
