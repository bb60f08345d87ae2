// Starts the third-party `oidc-provider` (npm) over HTTPS on 127.0.0.1 for the integration tests, set up like a
// production IdP for workloads: client_credentials with client_secret or private_key_jwt, JWT access tokens through
// resource indicators, a custom `groups` claim, and an RFC 8693 token-exchange grant registered with
// registerGrantType that verifies subject tokens against a second issuer's JWKS (oauth2-mock-server in the tests).
// Usage: node oidc_provider_server.mjs [--host 127.0.0.1] [--port 0]
// Env: IDBT_OP_TLS_CERT / IDBT_OP_TLS_KEY   PEM files of the server certificate (issued by the per-run test CA)
//      IDBT_OP_CLIENTS   JSON list of client metadata; extra per-client key `groups` (put in the tokens)
//      IDBT_OP_RESOURCES JSON {"<resource indicator>": {"scope": "a b", "ttl": 600}}
//      IDBT_OP_SUBJECT_ISSUER / IDBT_OP_SUBJECT_AUDIENCE   whose subject tokens the exchange accepts
//      IDBT_OP_PATH_PREFIX  optional mount path, e.g. "/<tenant>/v2.0" for an Entra-style authority (msal)
// A scope "<resource>/.default" (msal's client-credentials scope) selects that resource when none is given.
// Test-only knob: POST /_test/faults {"status": 503, "count": 2, "retry_after": "0", "delay_ms": 0} makes the next
// `count` token requests fail with `status` (or stall `delay_ms` first), like an overloaded IdP.
// Prints one JSON line {"issuer": "..."} on stdout once listening; stops on SIGTERM/SIGINT.
import { readFileSync } from "node:fs";
import https from "node:https";
import { createRemoteJWKSet, exportJWK, generateKeyPair, jwtVerify } from "jose";
import Provider, { errors } from "oidc-provider";

const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
const SUBJECT_TYPES = new Set(["urn:ietf:params:oauth:token-type:jwt", "urn:ietf:params:oauth:token-type:id_token"]);

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : fallback;
};
const host = option("--host", "127.0.0.1");
const port = Number(option("--port", "0"));
const clients = JSON.parse(process.env.IDBT_OP_CLIENTS ?? "[]");
const resources = JSON.parse(process.env.IDBT_OP_RESOURCES ?? "{}");
const subjectIssuer = process.env.IDBT_OP_SUBJECT_ISSUER;
const subjectAudience = process.env.IDBT_OP_SUBJECT_AUDIENCE;

const server = https.createServer({
  cert: readFileSync(process.env.IDBT_OP_TLS_CERT),
  key: readFileSync(process.env.IDBT_OP_TLS_KEY),
});
await new Promise((resolve) => server.listen(port, host, resolve));
const prefix = (process.env.IDBT_OP_PATH_PREFIX ?? "").replace(/\/$/, "");
const issuer = `https://${host}:${server.address().port}${prefix}`;

// A fresh signing key per start: restarting on the same port is how the tests rotate it.
const { privateKey } = await generateKeyPair("RS256", { extractable: true });
const signingKey = { ...(await exportJWK(privateKey)), kid: `op-${Date.now()}`, use: "sig", alg: "RS256" };
const groupsOf = Object.fromEntries(clients.map((c) => [c.client_id, c.groups ?? []]));

const provider = new Provider(issuer, {
  clients: clients.map(({ groups, ...metadata }) => ({ redirect_uris: [], response_types: [], ...metadata })),
  jwks: { keys: [signingKey] },
  clientAuthMethods: ["client_secret_basic", "client_secret_post", "private_key_jwt"],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: (ctx) => {
        const scopes = String(ctx.oidc.params.scope ?? "").split(" ");
        const dotDefault = scopes.find((s) => s.endsWith("/.default"));
        const resource = dotDefault?.slice(0, -"/.default".length);
        return resource && resources[resource] ? resource : undefined;
      },
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, indicator) => {
        const known = resources[indicator];
        if (!known) throw new errors.InvalidTarget(`unknown resource ${indicator}`);
        return {
          scope: known.scope ?? "",
          audience: indicator,
          accessTokenTTL: known.ttl ?? 600,
          accessTokenFormat: "jwt",
          jwt: { sign: { alg: "RS256" } },
        };
      },
    },
  },
  // The returned object replaces the token's `extra`, so what the grant put there is kept.
  extraTokenClaims: (ctx, token) => ({
    ...token.extra,
    groups: token.extra?.groups ?? groupsOf[token.clientId] ?? [],
  }),
});

// Only keys the subject issuer publishes right now are trusted (no cache), so a key rotation is felt at once.
const subjectKeys = subjectIssuer ? createRemoteJWKSet(new URL(`${subjectIssuer}/jwks`), { cooldownDuration: 0, cacheMaxAge: 0 }) : null;

async function tokenExchange(ctx) {
  const { subject_token: subjectToken, subject_token_type: subjectType, resource, scope } = ctx.oidc.params;
  if (!subjectKeys) throw new errors.UnsupportedGrantType();
  if (!SUBJECT_TYPES.has(subjectType)) throw new errors.InvalidRequest("unsupported subject_token_type");
  let claims;
  try {
    ({ payload: claims } = await jwtVerify(subjectToken, subjectKeys, {
      issuer: subjectIssuer,
      audience: subjectAudience,
      algorithms: ["RS256", "ES256", "PS256"],
    }));
  } catch (error) {
    // Like Keycloak and Okta, say why: the default description ("grant request is invalid") helps no one.
    const refused = new errors.InvalidGrant(`subject token rejected (${error.code ?? error.name})`);
    refused.error_description = refused.error_detail;
    throw refused;
  }
  const info = resources[resource];
  if (!resource || !info) throw new errors.InvalidTarget("resource must name a known resource server");
  const { client } = ctx.oidc;
  const resourceServer = new provider.ResourceServer(resource, {
    scope: info.scope ?? "",
    audience: resource,
    accessTokenTTL: info.ttl ?? 600,
    accessTokenFormat: "jwt",
    jwt: { sign: { alg: "RS256" } },
  });
  const granted = (scope ?? "").split(" ").filter((s) => resourceServer.scopes.has(s));
  // The exchanged token names the workload (the subject token's sub) and the client that acted for it (RFC 8693 act).
  const token = new provider.AccessToken({
    accountId: claims.sub,
    client,
    grantId: `te-${Date.now()}`,
    gty: "token_exchange",
    scope: granted.join(" ") || undefined,
    extra: { act: { sub: client.clientId }, groups: claims.groups ?? claims.roles ?? groupsOf[client.clientId] },
  });
  token.resourceServer = resourceServer;
  ctx.oidc.entity("AccessToken", token);
  const value = await token.save();
  ctx.body = {
    access_token: value,
    issued_token_type: "urn:ietf:params:oauth:token-type:access_token",
    token_type: "Bearer",
    expires_in: token.expiration,
    scope: token.scope,
  };
}
provider.registerGrantType(TOKEN_EXCHANGE, tokenExchange, [
  "subject_token",
  "subject_token_type",
  "requested_token_type",
  "resource",
  "audience",
  "scope",
]);

let faults = { count: 0 };
const app = provider.callback();
server.on("request", (req, res) => {
  if (prefix && req.url.startsWith(prefix)) {
    // Mounted under a path: oidc-provider derives its endpoints' mount path from originalUrl.
    req.originalUrl = req.url;
    req.url = req.url.slice(prefix.length) || "/";
  }
  if (req.method === "POST" && req.url === "/_test/faults") {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      faults = JSON.parse(body || "{}");
      res.writeHead(204).end();
    });
    return;
  }
  if (req.url.startsWith("/token") && faults.count > 0) {
    faults.count -= 1;
    const fail = () => {
      if (!faults.status) return app(req, res);
      const headers = { "content-type": "application/json" };
      if (faults.retry_after !== undefined) headers["retry-after"] = String(faults.retry_after);
      res.writeHead(faults.status, headers).end(JSON.stringify({ error: "temporarily_unavailable" }));
    };
    return faults.delay_ms ? setTimeout(fail, faults.delay_ms) : fail();
  }
  return app(req, res);
});
process.stdout.write(JSON.stringify({ issuer }) + "\n");

const stop = () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
