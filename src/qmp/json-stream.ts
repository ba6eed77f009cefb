/**
 * QMP's JSON input, as QEMU reads it (qobject/json-lexer.c, json-streamer.c, json-parser.c):
 * a byte stream with no framing. The lexer is QEMU's state table, so the extensions and the
 * quirks match: single-quoted strings, keywords lexed as [a-z]+ and rejected by the parser, and
 * after a lexical error the input is skipped up to the next structural or control character.
 * A message ends when its braces and brackets balance (or go negative). Errors carry QEMU's
 * texts ("JSON parse error, stray '@'"), so a client sees what it would see from QEMU.
 */

/** One complete input message: a value, or the error QEMU would answer it with. */
export type JsonMessage = { value: unknown } | { error: string };

type TokenType = 'string' | 'integer' | 'float' | 'keyword' | '{' | '}' | '[' | ']' | ',' | ':';

interface Token {
  readonly type: TokenType;
  readonly text: string;
}

/** Lexer states (json-lexer.c); each maps a character to the next state or ends a token. */
type State =
  | 'start'
  | 'recovery'
  | 'dq'
  | 'dq-escape'
  | 'sq'
  | 'sq-escape'
  | 'zero'
  | 'sign'
  | 'digits'
  | 'mantissa'
  | 'mantissa-digits'
  | 'exp-e'
  | 'exp-sign'
  | 'exp-digits'
  | 'keyword';

/** What the table says for one character. `lookahead`: the token ends before this character. */
type Step =
  | { next: State }
  | { emit: TokenType; lookahead: boolean }
  | { error: true }
  | { restart: true; lookahead: boolean };

const STRUCTURAL = '{}[],:';
const isDigit = (c: string): boolean => c >= '0' && c <= '9';
/** Characters QEMU's string states accept unescaped (0x20..0xFD of its byte table). */
const isStringChar = (c: string): boolean => c >= ' ';

const END_INTEGER: Step = { emit: 'integer', lookahead: true };
const END_FLOAT: Step = { emit: 'float', lookahead: true };
const ERROR: Step = { error: true };

function step(state: State, c: string): Step {
  switch (state) {
    case 'recovery':
      // Skip to a structural character or an ASCII control character other than tab.
      if (STRUCTURAL.includes(c) || (c < ' ' && c !== '\t')) return { restart: true, lookahead: true };
      return { next: 'recovery' };
    case 'dq':
    case 'sq': {
      const quote = state === 'dq' ? '"' : "'";
      if (c === quote) return { emit: 'string', lookahead: false };
      if (c === '\\') return { next: state === 'dq' ? 'dq-escape' : 'sq-escape' };
      return isStringChar(c) ? { next: state } : ERROR;
    }
    case 'dq-escape':
    case 'sq-escape':
      // Any character after a backslash; the parser rejects unknown escapes.
      return isStringChar(c) ? { next: state === 'dq-escape' ? 'dq' : 'sq' } : ERROR;
    case 'zero':
      if (isDigit(c)) return ERROR;
      return c === '.' ? { next: 'mantissa' } : END_INTEGER;
    case 'sign':
      if (c === '0') return { next: 'zero' };
      return isDigit(c) ? { next: 'digits' } : ERROR;
    case 'digits':
      if (isDigit(c)) return { next: 'digits' };
      if (c === 'e' || c === 'E') return { next: 'exp-e' };
      return c === '.' ? { next: 'mantissa' } : END_INTEGER;
    case 'mantissa':
      return isDigit(c) ? { next: 'mantissa-digits' } : ERROR;
    case 'mantissa-digits':
      if (isDigit(c)) return { next: 'mantissa-digits' };
      return c === 'e' || c === 'E' ? { next: 'exp-e' } : END_FLOAT;
    case 'exp-e':
      if (c === '-' || c === '+') return { next: 'exp-sign' };
      return isDigit(c) ? { next: 'exp-digits' } : ERROR;
    case 'exp-sign':
      return isDigit(c) ? { next: 'exp-digits' } : ERROR;
    case 'exp-digits':
      return isDigit(c) ? { next: 'exp-digits' } : END_FLOAT;
    case 'keyword':
      return c >= 'a' && c <= 'z' ? { next: 'keyword' } : { emit: 'keyword', lookahead: true };
    case 'start':
      return startStep(c);
  }
}

function startStep(c: string): Step {
  if (STRUCTURAL.includes(c)) return { emit: c as TokenType, lookahead: false };
  if (c === '"') return { next: 'dq' };
  if (c === "'") return { next: 'sq' };
  if (c === '0') return { next: 'zero' };
  if (isDigit(c)) return { next: 'digits' };
  if (c === '-') return { next: 'sign' };
  if (c >= 'a' && c <= 'z') return { next: 'keyword' };
  if (c === ' ' || c === '\t' || c === '\r' || c === '\n') return { restart: true, lookahead: false };
  return ERROR;
}

/** QEMU's JSON nesting limit (json-streamer.c MAX_NESTING). */
const MAX_NESTING = 1024;

/**
 * Feeds text in any chunking; `onMessage` is called once per complete message, in order.
 * Input left incomplete when the connection closes is dropped unanswered, as QEMU's monitor
 * drops its parser on CHR_EVENT_CLOSED.
 */
export class JsonStream {
  private state: State = 'start';
  private text = '';
  private tokens: Token[] = [];
  private braces = 0;
  private brackets = 0;

  constructor(private readonly onMessage: (message: JsonMessage) => void) {}

  feed(chunk: string): void {
    for (const c of chunk) this.feedChar(c);
  }

  private feedChar(c: string): void {
    for (;;) {
      const s = step(this.state, c);
      const consumed = !('lookahead' in s && s.lookahead);
      if (consumed) this.text += c;
      if ('next' in s) {
        this.state = s.next;
      } else if ('emit' in s) {
        this.token({ type: s.emit, text: this.text });
        this.reset('start');
      } else if ('error' in s) {
        this.emit({ error: `JSON parse error, stray '${this.text}'` });
        this.reset('recovery');
      } else {
        this.reset('start');
      }
      if (consumed) return;
    }
  }

  private reset(state: State): void {
    this.state = state;
    this.text = '';
  }

  /** json_message_process_token: collect tokens until the nesting balances. */
  private token(token: Token): void {
    if (token.type === '{') this.braces++;
    if (token.type === '}') this.braces--;
    if (token.type === '[') this.brackets++;
    if (token.type === ']') this.brackets--;
    if (this.braces + this.brackets > MAX_NESTING) {
      this.emit({ error: 'JSON nesting depth limit exceeded' });
      return;
    }
    this.tokens.push(token);
    const open = this.braces > 0 || this.brackets > 0;
    if (open && this.braces >= 0 && this.brackets >= 0) return;
    this.emit(parseTokens(this.tokens));
  }

  private emit(message: JsonMessage): void {
    this.tokens = [];
    this.braces = 0;
    this.brackets = 0;
    this.onMessage(message);
  }
}

class ParseError extends Error {}

/** json-parser.c over one message's tokens; the first error wins, as in QEMU. */
function parseTokens(tokens: readonly Token[]): JsonMessage {
  let pos = 0;
  const fail = (message: string): never => {
    throw new ParseError(`JSON parse error, ${message}`);
  };
  const peek = (): Token => tokens[pos] ?? fail('premature EOI');
  const pop = (): Token => {
    const t = peek();
    pos++;
    return t;
  };

  const value = (): unknown => {
    const t = peek();
    switch (t.type) {
      case '{':
        return object();
      case '[':
        return array();
      case 'string':
        pos++;
        return unescape(t.text, fail);
      case 'integer':
      case 'float':
        pos++;
        return Number(t.text);
      case 'keyword':
        pos++;
        if (t.text === 'true') return true;
        if (t.text === 'false') return false;
        if (t.text === 'null') return null;
        return fail(`invalid keyword '${t.text}'`);
      default:
        return fail('expecting value');
    }
  };

  const object = (): Record<string, unknown> => {
    pop();
    const dict: Record<string, unknown> = {};
    if (peek().type === '}') {
      pop();
      return dict;
    }
    for (;;) {
      const key = value();
      if (typeof key !== 'string') fail('key is not a string in object');
      if (pop().type !== ':') fail('missing : in object pair');
      const v = value();
      if (Object.hasOwn(dict, key as string)) fail('duplicate key');
      dict[key as string] = v;
      const sep = pop();
      if (sep.type === '}') return dict;
      if (sep.type !== ',') fail('expected separator in dict');
    }
  };

  const array = (): unknown[] => {
    pop();
    const list: unknown[] = [];
    if (peek().type === ']') {
      pop();
      return list;
    }
    for (;;) {
      list.push(value());
      const sep = pop();
      if (sep.type === ']') return list;
      if (sep.type !== ',') fail('expected separator in list');
    }
  };

  try {
    return { value: value() };
  } catch (err) {
    if (err instanceof ParseError) return { error: err.message };
    throw err;
  }
}

const ESCAPES: Record<string, string> = {
  '"': '"',
  "'": "'",
  '\\': '\\',
  '/': '/',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
};

/** The value of a quoted string token (json-parser.c parse_string). */
function unescape(token: string, fail: (message: string) => never): string {
  let out = '';
  for (let i = 1; i < token.length - 1; i++) {
    const c = token[i];
    if (c !== '\\') {
      out += c;
      continue;
    }
    const e = token[++i];
    if (e in ESCAPES) {
      out += ESCAPES[e];
      continue;
    }
    if (e !== 'u') fail('invalid escape sequence in string');
    const hex = token.slice(i + 1, i + 5);
    const code = hexCode(hex);
    i += 4;
    // A high surrogate must pair with an escaped low one; QEMU quotes a bad escape as written.
    const low =
      code >= 0xd800 && code < 0xdc00 && token.startsWith('\\u', i + 1)
        ? hexCode(token.slice(i + 3, i + 7))
        : -1;
    if (low >= 0xdc00 && low <= 0xdfff) {
      out += String.fromCharCode(code, low);
      i += 6;
    } else if (code < 0 || (code >= 0xd800 && code <= 0xdfff)) {
      fail(`\\u${hex} is not a valid Unicode character`);
    } else {
      out += String.fromCharCode(code);
    }
  }
  return out;
}

function hexCode(hex: string): number {
  return /^[0-9a-fA-F]{4}$/.test(hex) ? parseInt(hex, 16) : -1;
}
