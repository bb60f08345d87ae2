// Starts the third-party oauth2-mock-server on 127.0.0.1 for the integration tests, configured like a real IdP:
// it checks client secrets, puts the client and its roles in the token, and reads `audience`/`resource`.
// Usage: node oauth2_mock_server.mjs [--host 127.0.0.1] [--port 0]
// Env: IDBT_MOCK_CLIENTS='{"id": {"secret": "...", "roles": ["a"]}}', IDBT_MOCK_AUTH_METHODS='client_secret_post'
//   per client, optional: "aud" (always issued, whatever was asked), "lifetime" (seconds), "status" (fail with it)
// Prints one JSON line {"issuer": "..."} on stdout once listening; stops on SIGTERM/SIGINT.
import { OAuth2Server } from "oauth2-mock-server";

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : fallback;
};
const host = option("--host", "127.0.0.1");
const port = Number(option("--port", "0"));
const clients = JSON.parse(process.env.IDBT_MOCK_CLIENTS ?? "{}");
const authMethods = (process.env.IDBT_MOCK_AUTH_METHODS ?? "").split(",").filter(Boolean);

const server = new OAuth2Server();
await server.issuer.keys.generate("RS256");

function credentials(req) {
  const [scheme, value] = (req.headers.authorization ?? "").split(" ");
  if (scheme?.toLowerCase() === "basic" && value) {
    const decoded = Buffer.from(value, "base64").toString("utf8");
    const at = decoded.indexOf(":");
    const [id, secret] = [decoded.slice(0, at), decoded.slice(at + 1)].map((part) =>
      decodeURIComponent(part.replace(/\+/g, " ")),
    );
    return { id, secret, method: "client_secret_basic" };
  }
  return { id: req.body?.client_id, secret: req.body?.client_secret, method: "client_secret_post" };
}

if (authMethods.length > 0) {
  server.service.on("beforeWellKnownOpenIdConfiguration", (config) => {
    config.body.token_endpoint_auth_methods_supported = authMethods;
  });
}

server.service.on("beforeTokenSigning", (token, req) => {
  const { id } = credentials(req);
  const client = clients[id] ?? {};
  const audience = req.body.audience ?? req.body.resource;
  token.payload.sub = id;
  token.payload.client_id = id;
  if (audience !== undefined) token.payload.aud = audience;
  if (client.aud) token.payload.aud = client.aud;
  if (client.roles) token.payload.roles = client.roles;
  if (client.lifetime) token.payload.exp = token.payload.iat + client.lifetime;
});

server.service.on("beforeResponse", (response, req) => {
  const { id, secret, method } = credentials(req);
  const client = clients[id];
  const reject = (status, error, description) => {
    response.statusCode = status;
    response.body = { error, error_description: description };
  };
  if (!client || client.secret !== secret) {
    reject(401, "invalid_client", "Client authentication failed (unknown client or wrong secret).");
  } else if (authMethods.length > 0 && !authMethods.includes(method)) {
    reject(401, "invalid_client", `Client authentication method ${method} is not allowed.`);
  } else if (client.status) {
    reject(client.status, client.error ?? "server_error", "Simulated failure.");
  }
});

await server.start(port, host);
// The package names 127.0.0.1 "localhost"; keep the address the tests bound so no name lookup is involved.
server.issuer.url = `http://${host}:${server.address().port}`;
process.stdout.write(JSON.stringify({ issuer: server.issuer.url }) + "\n");

const stop = async () => {
  await server.stop();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
