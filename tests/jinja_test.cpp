// The Jinja2 subset (engine/data/jinja) on small templates: each case's expected text is written
// by hand, and the same cases are rendered by python3-jinja2 with Hugging Face's settings
// (tests/tools/render_chat_template.py), which must give the same text. Errors name the
// template and line.
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine/data/jinja/template.h"
#include "jinja_reference.h"

namespace prefengine {
namespace {

using nlohmann::ordered_json;

struct Case {
  const char* what;
  const char* source;
  const char* context;  // JSON object
  const char* expected;
};

// Expected strings by hand; the reference renderer confirms each one below.
const std::vector<Case>& cases() {
  static const std::vector<Case> all = {
      {"output and str()", "{{ x }}|{{ y }}|{{ z }}|{{ n }}|{{ u }}", R"({"x": 1.0, "y": [1, "a", null, true], "z": {"k": "v'"}, "n": null})",
       "1.0|[1, 'a', None, True]|{'k': \"v'\"}|None|"},
      {"whitespace control", "a  {{- ' b ' -}}  c\n{%- if true -%}\n  d\n{%- endif %}", "{}", "a b cd"},
      {"trim_blocks and lstrip_blocks", "<ul>\n  {% for i in xs %}\n  <li>{{ i }}</li>\n  {% endfor %}\n</ul>\n",
       R"({"xs": [1, 2]})", "<ul>\n  <li>1</li>\n  <li>2</li>\n</ul>"},
      {"comments and {%+ (no lstrip)", "x\n  {# note #}\ny\n  {%+ if true %}z{% endif %}", "{}", "x\ny\n  z"},
      {"if elif else", "{% for v in [1, 2, 3] %}{% if v == 1 %}one{% elif v == 2 %}two{% else %}many{% endif %},{% endfor %}",
       "{}", "one,two,many,"},
      {"loop variables",
       "{% for c in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }};{% endfor %}",
       "{}", "10TrueFalse33;21FalseFalse32;32FalseTrue31;"},
      {"loop over dict items", "{% for k, v in d.items() %}{{ k }}={{ v }}{{ ',' if not loop.last }}{% endfor %}|{% for k in d %}{{ k }}{% endfor %}",
       R"({"d": {"b": 1, "a": 2}})", "b=1,a=2|ba"},
      {"for with filter, else, break and continue",
       "{% for i in range(10) if i is odd %}{% if i == 7 %}{% break %}{% endif %}{% if i == 3 %}{% continue %}{% endif %}{{ i }}{% endfor %}|{% for i in [] %}x{% else %}empty{% endfor %}",
       "{}", "15|empty"},
      {"set, namespace and scoping",
       "{% set ns = namespace(total=0, seen=false) %}{% set x = 'outer' %}{% for i in [1, 2, 3] %}{% set x = 'inner' %}{% set ns.total = ns.total + i %}{% set ns.seen = true %}{% endfor %}{{ x }} {{ ns.total }} {{ ns.seen }}",
       "{}", "outer 6 True"},
      {"tuple set and block set", "{% set a, b = 1, 'two' %}{% set c %}[{{ b }}]{% endset %}{{ a }}{{ c }}", "{}", "1[two]"},
      {"macros", "{% macro tag(name, body='-') %}<{{ name }}>{{ body }}</{{ name }}>{% endmacro %}{{ tag('a') }}{{ tag('b', body='x') }}",
       "{}", "<a>-</a><b>x</b>"},
      {"filters", "{{ '  pad  ' | trim }}|{{ 'Ab' | upper }}{{ 'Ab' | lower }}|{{ [1, 2] | length }}{{ 'héllo' | length }}|{{ 42 | string ~ '!' }}|{{ 'a-b-c' | replace('-', '+') }}|{{ ['x', 'y'] | join(', ') }}|{{ 'ab' | list }}|{{ [4, 5] | first }}{{ [4, 5] | last }}|{{ missing | default('dflt') }}{{ '' | default('empty', true) }}|{{ {'k': 1} | items | list }}|{{ '12' | int + 1 }}{{ 3.9 | int }}{{ 'x' | int }}|{{ '<b>' | safe }}",
       "{}", "pad|ABab|25|42!|a+b+c|x, y|['a', 'b']|45|dfltempty|[('k', 1)]|1330|<b>"},
      {"tojson as HF defines it", "{{ v | tojson }}|{{ v | tojson(indent=2) }}",
       R"({"v": {"b": [1, 2.5, null, true], "a": "é\"\n", "e": {}}})",
       "{\"b\": [1, 2.5, null, true], \"a\": \"é\\\"\\n\", \"e\": {}}|{\n  \"b\": [\n    1,\n    2.5,\n    null,\n    true\n  ],\n  \"a\": \"é\\\"\\n\",\n  \"e\": {}\n}"},
      {"tests",
       "{{ x is defined }}{{ y is undefined }}{{ n is none }}{{ s is string }}{{ d is mapping }}{{ l is iterable }}{{ l is sequence }}{{ 1.5 is number }}{{ 3 is equalto 3 }}{{ 'a' is in 'cat' }}{{ f is false }}{{ n is not none }}",
       R"({"x": 0, "n": null, "s": "s", "d": {}, "l": [], "f": false})", "TrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueFalse"},
      {"string methods",
       "{{ 'hello'.startswith('he') }}{{ 'hello'.endswith(('x', 'lo')) }}|{{ '\\n x \\n'.strip() }}|{{ '--x--'.lstrip('-') }}|{{ '--x--'.rstrip('-') }}|{{ 'a</t>b</t>c'.split('</t>') }}|{{ ' a  b '.split() }}|{{ 'aaa'.replace('a', 'b', 2) }}|{{ 'Mixed'.upper() }}{{ 'Mixed'.lower() }}|{{ 'hello big world'.title() }}",
       "{}", "TrueTrue|x|x--|--x|['a', 'b', 'c']|['a', 'b']|bba|MIXEDmixed|Hello Big World"},
      {"slicing and indexing", "{{ [1, 2, 3][::-1] }}{{ [1, 2, 3][1:] }}{{ 'abcdef'[1:5:2] }}{{ 'héllo'[1] }}{{ [1, 2, 3][-1] }}{{ 'abc'[-2:] }}",
       "{}", "[3, 2, 1][2, 3]bdé3bc"},
      {"arithmetic and concatenation", "{{ 1 + 2 * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % -3 }} {{ 10 / 4 }} {{ 2 ** 10 }} {{ 'a' ~ 1 ~ none }} {{ [1] + [2] }} {{ 0.1 + 0.2 }}",
       "{}", "7 3 -4 -2 2.5 1024 a1None [1, 2] 0.30000000000000004"},
      {"comparisons and logic", "{{ 1 < 2 < 3 }}{{ 2 >= 3 }}{{ 'b' > 'a' }}{{ 1 == 1.0 }}{{ 'x' in ['x'] }}{{ 'k' in {'k': 1} }}{{ 'z' not in 'abc' }}{{ not [] }}{{ 0 or 'fallback' }}{{ 1 and 'both' }}",
       "{}", "TrueFalseTrueTrueTrueTrueTrueTruefallbackboth"},
      {"conditional expressions and precedence", "{{ 'y' if n > 1 else 'n' }}{{ 'absent' if false }}|{{ xs | length - 1 }}|{{ 'a' + 'b' | upper }}",
       R"({"n": 2, "xs": [1, 2, 3]})", "y|2|aB"},
      {"select, selectattr, rejectattr and map",
       "{{ ms | selectattr('role', 'equalto', 'user') | map(attribute='content') | list }}{{ ms | rejectattr('role', 'equalto', 'user') | list | length }}{{ [0, 1, 2, 3] | select('odd') | list }}{{ [0, 1, ''] | reject | list }}{{ [' a ', 'b '] | map('trim') | join }}{{ ms | map(attribute='x', default='-') | join }}",
       R"({"ms": [{"role": "user", "content": "u1"}, {"role": "assistant", "content": "a1"}, {"role": "user", "content": "u2"}]})",
       "['u1', 'u2']1[1, 3][0, '']ab---"},
      {"dict access and methods", "{{ m.role }}{{ m['content'] }}{{ m.get('x', 'none') }}{{ m.keys() | list }}{{ m.missing is defined }}",
       R"({"m": {"role": "user", "content": "hi"}})", "userhinone['role', 'content']False"},
  };
  return all;
}

TEST(JinjaTest, RendersSmallTemplatesAsWrittenByHand) {
  for (const auto& c : cases()) {
    SCOPED_TRACE(c.what);
    const jinja::Template t(c.source, "case");
    EXPECT_EQ(t.render(ordered_json::parse(c.context)), c.expected);
  }
}

TEST(JinjaTest, MatchesPythonJinja2OnTheSameTemplates) {
  ordered_json batch = ordered_json::array();
  for (const auto& c : cases()) batch.push_back({{"template", c.source}, {"context", ordered_json::parse(c.context)}});
  const auto reference = testing::render_with_python_jinja2(batch);
  if (!reference.unavailable.empty()) GTEST_SKIP() << "reference renderer unavailable: " << reference.unavailable;
  ASSERT_EQ(reference.results.size(), cases().size());
  for (size_t i = 0; i < cases().size(); ++i) {
    SCOPED_TRACE(cases()[i].what);
    ASSERT_TRUE(reference.results[i].contains("text")) << reference.results[i].dump();
    EXPECT_EQ(reference.results[i]["text"].get<std::string>(), cases()[i].expected);
  }
}

// Templates in the style of Llama 3.1 (tools, tojson with indent, items loops, tool_calls) and
// Mistral Instruct (role alternation via raise_exception): whatever python3-jinja2 renders, or
// fails on, the subset must render the same way.
TEST(JinjaTest, MatchesPythonJinja2OnToolStyleTemplates) {
  const std::vector<std::string> templates = {R"JINJA({{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions." }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- set tool_call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
        {{- '{"name": "' + tool_call.name + '", ' }}
        {{- '"parameters": ' }}
        {{- tool_call.arguments | tojson }}
        {{- "}" }}
        {%- for arg_name, arg_val in tool_call.arguments | items %}{{ arg_name }}={{ arg_val }};{% endfor %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
)JINJA",
                                              R"JINJA({%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content'] %}{%- set loop_messages = messages[1:] %}{%- else %}{%- set loop_messages = messages %}{%- endif %}
{{- bos_token }}
{%- for message in loop_messages %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif %}
    {%- if message['role'] == 'user' %}
        {%- if loop.last and system_message is defined %}
            {{- '[INST] ' + system_message + '\n\n' + message['content'] + '[/INST]' }}
        {%- else %}
            {{- '[INST] ' + message['content'] + '[/INST]' }}
        {%- endif %}
    {%- elif message['role'] == 'assistant' %}
        {{- ' ' + message['content'] + eos_token}}
    {%- else %}
        {{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}
    {%- endif %}
{%- endfor %}
)JINJA"};
  const ordered_json tools = ordered_json::parse(R"([{"type": "function", "function": {"name": "f", "description": "d",
      "parameters": {"type": "object", "properties": {"x": {"type": "number"}}}}}])");
  const ordered_json conversations = ordered_json::parse(R"([
      [{"role": "system", "content": " sys \n"}, {"role": "user", "content": "Hi ünï"},
       {"role": "assistant", "content": "Yo", "tool_calls": [{"function": {"name": "f", "arguments": {"b": 1, "a": [1.25, "x"]}}}]},
       {"role": "user", "content": "again"}],
      [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}],
      [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]])");
  ordered_json batch = ordered_json::array();
  std::vector<std::string> ours;
  for (const auto& source : templates) {
    const jinja::Template t(source, "tool-style");
    for (const auto& messages : conversations) {
      for (bool gen : {false, true}) {
        ordered_json context = {{"messages", messages}, {"bos_token", "<s>"}, {"eos_token", "</s>"},
                                {"add_generation_prompt", gen}, {"tools", tools}, {"tools_in_user_message", false}};
        batch.push_back({{"template", source}, {"context", context}});
        try {
          ours.push_back(t.render(context));
        } catch (const jinja::TemplateError& e) {
          ours.push_back(std::string("error: ") + e.what());
        }
      }
    }
  }
  const auto reference = testing::render_with_python_jinja2(batch);
  if (!reference.unavailable.empty()) GTEST_SKIP() << "reference renderer unavailable: " << reference.unavailable;
  ASSERT_EQ(reference.results.size(), ours.size());
  int errors = 0;
  for (size_t i = 0; i < ours.size(); ++i) {
    SCOPED_TRACE("case " + std::to_string(i));
    if (reference.results[i].contains("error")) {
      ++errors;
      EXPECT_EQ(ours[i].rfind("error: tool-style:", 0), 0u) << ours[i];
      EXPECT_NE(ours[i].find("raise_exception: After the optional system message"), std::string::npos) << ours[i];
    } else {
      EXPECT_EQ(ours[i], reference.results[i]["text"].get<std::string>());
    }
  }
  EXPECT_EQ(errors, 2);  // the Mistral-style template on two user turns in a row
}

// The error text of rendering `source` (empty when it renders).
std::string error_of(const std::string& source, const std::string& context = "{}") {
  try {
    jinja::Template t(source, "tpl.jinja");
    t.render(ordered_json::parse(context));
  } catch (const jinja::TemplateError& e) {
    return e.what();
  }
  return "";
}

TEST(JinjaTest, ErrorsNameTheTemplateAndLine) {
  EXPECT_EQ(error_of("line one\n{{ x | nosuchfilter }}"), "tpl.jinja:2: unknown filter 'nosuchfilter'");
  EXPECT_EQ(error_of("a\n\n{% for m in messages %}\n{{ m }}\n"),
            "tpl.jinja:3: unclosed 'for' block: expected 'endfor' before the end of the template");
  EXPECT_EQ(error_of("{% if x %}\n{% endfor %}"),
            "tpl.jinja:2: unexpected 'endfor' inside the 'if' block (expected 'endif')");
  EXPECT_EQ(error_of("\n{{ x is nosuchtest }}"), "tpl.jinja:2: unknown test 'nosuchtest'");
  EXPECT_EQ(error_of("{% frobnicate %}"), "tpl.jinja:1: unknown tag 'frobnicate'");
  EXPECT_EQ(error_of("{{ 'open"), "tpl.jinja:1: unterminated string literal");
  EXPECT_EQ(error_of("ok\n{{ x"), "tpl.jinja:2: unterminated tag: missing '}}'");
  EXPECT_EQ(error_of("{# never closed"), "tpl.jinja:1: unterminated comment: missing '#}'");
  // raise_exception, as chat templates use it to reject conversations.
  EXPECT_EQ(error_of("{% if messages[0].role != 'user' %}\n  {{ raise_exception('Conversation must start with user') }}\n{% endif %}",
                     R"({"messages": [{"role": "assistant"}]})"),
            "tpl.jinja:2: raise_exception: Conversation must start with user");
  // Using an undefined value, and type errors, while rendering.
  EXPECT_EQ(error_of("{{ x.y }}"), "tpl.jinja:1: 'x' is undefined");
  EXPECT_EQ(error_of("{{ m.nope.deeper }}", R"({"m": {}})"), "tpl.jinja:1: 'dict object' has no attribute 'nope'");
  EXPECT_EQ(error_of("\n\n{{ 1 + 'a' }}"), "tpl.jinja:3: unsupported operand type(s) for +: 'int' and 'str'");
  EXPECT_EQ(error_of("{% set n = 1 %}{% set n.a = 2 %}"), "tpl.jinja:1: cannot assign attribute on non-namespace object 'n'");
}

}  // namespace
}  // namespace prefengine
