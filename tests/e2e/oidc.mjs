// A real OpenID provider (node-oidc-provider) on 127.0.0.1 with an ephemeral port: the
// authorization server the edge is put in front of in the end-to-end checks.
//
// It prints one line, `OIDC_READY port=PORT issuer=ISSUER`, once it listens, and exits on
// SIGTERM or SIGINT. Optional env: E2E_RESOURCE (the MCP resource the provider accepts as an
// RFC 8707 resource indicator), E2E_SCOPES (space-separated scopes of it), E2E_ISSUER_PATH
// (e.g. `/oidc`: the provider is mounted there, and the issuer is http://127.0.0.1:PORT/oidc),
// E2E_CLIENT_ID and E2E_CLIENT_SECRET (a confidential client allowed the client_credentials
// grant, so the checks get real access tokens without a browser).
//
// Access tokens for E2E_RESOURCE are JWTs (RS256, signed with the key published at jwks_uri,
// `aud` = the resource), as an MCP server that validates tokens itself expects them.
//
// oidc-provider serves its metadata at `<issuer>/.well-known/openid-configuration` and
// `<issuer>/.well-known/oauth-authorization-server`. With an issuer path, neither RFC 8414
// path-inserted form exists, so the edge finds the document at the third step of its discovery
// order (`/oidc/.well-known/openid-configuration`), after two 404s.

import http from 'node:http';
import Provider from 'oidc-provider';

const resource = process.env.E2E_RESOURCE ?? '';
const resourceScopes = process.env.E2E_SCOPES ?? '';
const serviceClientId = process.env.E2E_CLIENT_ID ?? 'e2e-service';
const serviceClientSecret = process.env.E2E_CLIENT_SECRET ?? 'e2e-service-secret-not-a-secret';

const server = http.createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(0, '127.0.0.1', resolve);
});
const { port } = server.address();
const mount = (process.env.E2E_ISSUER_PATH ?? '').replace(/\/$/, '');
if (mount && !/^\/[A-Za-z0-9._~-]+(\/[A-Za-z0-9._~-]+)*$/.test(mount)) {
  console.error(`E2E_ISSUER_PATH must look like /oidc, got ${mount}`);
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}${mount}`;

const provider = new Provider(issuer, {
  clients: [
    {
      // A pre-registered public client, for anyone poking at the provider by hand.
      client_id: 'e2e-public',
      token_endpoint_auth_method: 'none',
      application_type: 'native',
      redirect_uris: ['http://127.0.0.1:33418/callback'],
    },
    {
      // A machine client: client_credentials with a resource indicator gives a JWT access token
      // for the edge's resource (what the gate round's clients present).
      client_id: serviceClientId,
      client_secret: serviceClientSecret,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: resourceScopes || undefined,
    },
  ],
  // PKCE S256 is what MCP clients require the server to advertise.
  pkce: { required: () => true },
  scopes: ['openid', 'offline_access', ...resourceScopes.split(' ').filter(Boolean)],
  features: {
    // MCP clients register themselves (RFC 7591).
    registration: { enabled: true },
    // Machine-to-machine tokens (the SDKs' client-credentials providers).
    clientCredentials: { enabled: true },
    // MCP clients send `resource` (RFC 8707) naming the MCP server.
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf ?? (resource || undefined),
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, indicator) => {
        if (resource && indicator === resource) {
          return { scope: resourceScopes, audience: resource, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
        }
        throw new Provider.errors.InvalidTarget();
      },
    },
  },
  // Quiet the development-only warnings about generated keys: this provider lives for one run.
  cookies: { keys: ['mcp-auth-edge-e2e-not-a-secret'] },
});
provider.proxy = false;

const callback = provider.callback();
server.on('request', (req, res) => {
  if (!mount) return callback(req, res);
  // The provider routes below its mount path (its own URLs carry the issuer's path).
  if (req.url === mount || req.url.startsWith(`${mount}/`) || req.url.startsWith(`${mount}?`)) {
    // As express does when mounting: oidc-provider reads its mount path from originalUrl.
    req.originalUrl = req.url;
    req.url = req.url.slice(mount.length) || '/';
    return callback(req, res);
  }
  res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not_found"}');
});

const stop = (signal) => {
  server.close(() => process.exit(0));
  server.closeAllConnections?.();
  // Bounded: never outlive a stuck connection.
  setTimeout(() => process.exit(0), 2000).unref();
  process.stderr.write(`oidc.mjs: ${signal}, stopping\n`);
};
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));

process.stdout.write(`OIDC_READY port=${port} issuer=${issuer}\n`);
