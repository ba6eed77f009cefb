import { describe, expect, it } from 'vitest';
import { JsonStream, type JsonMessage } from '../../src/qmp/json-stream.ts';

/** Every message `input` yields, fed in chunks of `chunk` characters. */
function messages(input: string, chunk = input.length): JsonMessage[] {
  const out: JsonMessage[] = [];
  const stream = new JsonStream((m) => out.push(m));
  for (let i = 0; i < input.length; i += chunk) stream.feed(input.slice(i, i + chunk));
  return out;
}

const error = (text: string): JsonMessage => ({ error: `JSON parse error, ${text}` });

describe('JsonStream (QEMU json-lexer/streamer/parser)', () => {
  it('frames messages by balanced braces, not by lines, in any chunking', () => {
    const input = '{"execute":"a"}{"execute":\n"b", "arguments": {"x": [1, 2.5e1, -0, true, null]}}\n';
    const expected = [
      { value: { execute: 'a' } },
      { value: { execute: 'b', arguments: { x: [1, 25, -0, true, null] } } },
    ];
    expect(messages(input)).toEqual(expected);
    expect(messages(input, 1)).toEqual(expected);
    expect(messages(input, 7)).toEqual(expected);
  });

  it('waits for an unbalanced message and answers nothing for it', () => {
    expect(messages('{"execute": "a", "arguments": {')).toEqual([]);
  });

  it('takes a top-level scalar as a message once a character ends it', () => {
    expect(messages('12')).toEqual([]);
    expect(messages('12\n"s"')).toEqual([{ value: 12 }, { value: 's' }]);
  });

  it("accepts QEMU's single-quoted strings and its escapes, including surrogate pairs", () => {
    expect(messages(`{'a': 'it\\'s "x"', "b": "\\u00e9\\ud83d\\ude00\\/\\t"}`)).toEqual([
      { value: { a: `it's "x"`, b: 'é😀/\t' } },
    ]);
  });

  it('reports parser errors with QEMU 7.2 texts', () => {
    const cases: [string, string][] = [
      ['{bad json}', "invalid keyword 'bad'"],
      ['{"a" 1}', 'missing : in object pair'],
      ['{1:2}', 'key is not a string in object'],
      ['[1 2]', 'expected separator in list'],
      ['{"a":1 "b":2}', 'expected separator in dict'],
      ['{"a":[1,]}', 'expecting value'],
      ['{"a":1,"a":2}', 'duplicate key'],
      ['{"a":"\\q"}', 'invalid escape sequence in string'],
      ['"\\uzzzz"', '\\uzzzz is not a valid Unicode character'],
      ['"\\ud800"', '\\ud800 is not a valid Unicode character'],
      [']', 'expecting value'],
    ];
    for (const [input, text] of cases) expect(messages(`${input}\n`), input).toEqual([error(text)]);
  });

  it('reports a stray character and resynchronizes at the next structural or control character', () => {
    expect(messages('@ {"a":1}\n')).toEqual([error("stray '@'"), { value: { a: 1 } }]);
    // The bad token is dropped with the message around it; what follows is parsed afresh.
    expect(messages('{"a":01 , "b":2}\n')).toEqual([
      error("stray '01'"),
      error('expecting value'),
      { value: 'b' },
      error('expecting value'),
      { value: 2 },
      error('expecting value'),
    ]);
    // Letters after an error are skipped up to the line end.
    expect(messages('Tru\n[]')).toEqual([error("stray 'T'"), { value: [] }]);
    expect(messages('{"a":-}\n')).toEqual([error("stray '-}'")]);
  });

  it('refuses nesting deeper than QEMU allows', () => {
    const out = messages('['.repeat(1025));
    expect(out).toEqual([{ error: 'JSON nesting depth limit exceeded' }]);
  });
});
