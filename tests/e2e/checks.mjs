// The small check harness shared by the Node scripts: named checks, one line each, and a
// summary line run.sh adds up (`RESULT passed=N failed=M`).

import { isDeepStrictEqual } from 'node:util';

export class Checks {
  constructor(name) {
    this.name = name;
    this.passed = 0;
    this.failed = 0;
  }

  /** Records one check: `ok` true passes; otherwise `detail` says what was wrong. */
  check(title, ok, detail = '') {
    if (ok) {
      this.passed += 1;
      console.log(`  ok   ${title}`);
    } else {
      this.failed += 1;
      console.log(`  FAIL ${title}${detail ? `\n       ${detail.replaceAll('\n', '\n       ')}` : ''}`);
    }
    return ok;
  }

  /** A check that `actual` deep-equals `expected`, showing both when it does not. */
  equal(title, actual, expected) {
    return this.check(
      title,
      isDeepStrictEqual(actual, expected),
      `expected ${JSON.stringify(expected)}\ngot      ${JSON.stringify(actual)}`,
    );
  }

  /** Runs an async step; an exception fails it with the message instead of ending the script. */
  async step(title, fn) {
    try {
      return await fn();
    } catch (error) {
      this.check(title, false, `threw ${error?.stack ?? error}`);
      return undefined;
    }
  }

  /** Prints the summary and sets the exit code. */
  finish() {
    console.log(`RESULT ${this.name} passed=${this.passed} failed=${this.failed}`);
    process.exitCode = this.failed === 0 && this.passed > 0 ? 0 : 1;
  }
}

/** Field-by-field differences between two metadata objects, as lines; empty when equal. */
export function fieldDiff(a, b, labelA = 'a', labelB = 'b') {
  const keys = [...new Set([...Object.keys(a ?? {}), ...Object.keys(b ?? {})])].sort();
  const lines = [];
  for (const key of keys) {
    if (!isDeepStrictEqual(a?.[key], b?.[key])) {
      lines.push(`${key}: ${labelA}=${JSON.stringify(a?.[key])} ${labelB}=${JSON.stringify(b?.[key])}`);
    }
  }
  return lines;
}

/** Reads a required environment variable or exits with a clear message. */
export function env(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is not set (run.sh sets it)`);
    process.exit(2);
  }
  return value;
}

/** A fetch that records each request's URL, its MCP-Protocol-Version header and the status. */
export function recordingFetch(log) {
  return async (url, init = {}) => {
    const headers = new Headers(init.headers ?? {});
    const entry = { url: String(url), mcpProtocolVersion: headers.get('mcp-protocol-version'), status: undefined };
    log.push(entry);
    const response = await fetch(url, { ...init, signal: init.signal ?? AbortSignal.timeout(5000) });
    entry.status = response.status;
    return response;
  };
}

/** `path status` pairs of a request log, for compact assertions and output. */
export function trail(log, origin) {
  return log.map((e) => `${e.url.startsWith(origin) ? e.url.slice(origin.length) : e.url} ${e.status}`);
}

/**
 * An access token for `resource` from the provider, without a browser: the client_credentials
 * grant with an RFC 8707 resource indicator (oidc.mjs's machine client). Returns the token response.
 */
export async function clientCredentialsToken({ issuer, clientId, clientSecret, resource, scope }) {
  const meta = await fetch(`${issuer}/.well-known/oauth-authorization-server`, { signal: AbortSignal.timeout(5000) }).then((r) => r.json());
  const r = await fetch(meta.token_endpoint, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`).toString('base64')}`,
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', resource, scope }),
    signal: AbortSignal.timeout(5000),
  });
  const body = await r.json();
  if (!r.ok || !body.access_token) throw new Error(`token endpoint answered ${r.status}: ${JSON.stringify(body)}`);
  return body;
}

/**
 * A fetch for SDK transports that keeps every exchange: method, URL, status, content type, whether
 * an Authorization header went out, and the Response (its headers stay readable after the body is
 * consumed). Streams are not cut short: no timeout is added when the caller passes a signal.
 */
export function exchangeLog(log) {
  return async (url, init = {}) => {
    const headers = new Headers(init.headers ?? {});
    const entry = {
      method: init.method ?? 'GET',
      url: String(url),
      authorization: headers.has('authorization'),
      sessionId: headers.get('mcp-session-id'),
      status: undefined,
    };
    log.push(entry);
    const response = await fetch(url, init.signal ? init : { ...init, signal: AbortSignal.timeout(10000) });
    entry.status = response.status;
    entry.contentType = response.headers.get('content-type');
    entry.response = response;
    return response;
  };
}

/** `METHOD path status` lines of an exchange log, paths relative to `origin`. */
export function exchanges(log, origin) {
  return log.map((e) => `${e.method} ${e.url.startsWith(origin) ? e.url.slice(origin.length) : e.url} ${e.status}`);
}

/** Rejects after `ms` with a message naming `what`, so a hung step fails instead of stalling. */
export function within(ms, what, promise) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Logs a person in at oidc-provider's development interactions and consents, the way a browser
 * would: follows the authorization URL's redirects with the provider's cookies, submits the login
 * form (any login is accepted) and the consent form, and returns the final redirect to the
 * client's redirect_uri (with `code`, `state` and `iss`) as a URL, without requesting it.
 */
export async function loginAtProvider(authorizationUrl, login) {
  const jar = new Map();
  const keep = (r) => {
    for (const line of r.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair.indexOf('=');
      jar.set(pair.slice(0, eq).trim(), pair.slice(eq + 1));
    }
  };
  const cookie = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  let url = new URL(authorizationUrl);
  for (let hop = 0; hop < 12; hop++) {
    let r = await fetch(url, { redirect: 'manual', headers: { cookie: cookie() }, signal: AbortSignal.timeout(5000) });
    keep(r);
    if (r.status === 200 && url.pathname.includes('/interaction/')) {
      // A login or consent page: submit it as its form would.
      const page = await r.text();
      const prompt = /name="prompt" value="([a-z]+)"/.exec(page)?.[1];
      if (!prompt) throw new Error(`interaction page without a prompt at ${url}`);
      const form = prompt === 'login' ? { prompt, login, password: 'any' } : { prompt };
      r = await fetch(url, {
        method: 'POST',
        redirect: 'manual',
        headers: { cookie: cookie(), 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(form),
        signal: AbortSignal.timeout(5000),
      });
      keep(r);
    }
    if (r.status < 300 || r.status > 399) throw new Error(`${url} answered ${r.status}: ${(await r.text()).slice(0, 300)}`);
    await r.body?.cancel();
    const next = new URL(r.headers.get('location'), url);
    if (next.origin !== new URL(authorizationUrl).origin) return next;
    url = next;
  }
  throw new Error('no redirect back to the client after 12 steps');
}
