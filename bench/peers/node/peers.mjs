// Loads the npm peers from the bench-only install directory (default
// build-peers/ at the top of the repository; CURRANT_PEERS_DIR overrides),
// which bench/peers/compare.sh fills with `npm install`. Nothing else in the
// repository needs them.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
export const peersDir = process.env.CURRANT_PEERS_DIR || path.resolve(here, '../../../build-peers');
export const requirePeer = createRequire(path.join(peersDir, 'package.json'));
export const versionOf = (name) => requirePeer(`${name}/package.json`).version;

// Statements sent to PostgreSQL by this process: every call of pg's
// Client.query (graphile-worker and pg-boss both go through it; a
// multi-statement string is one call, one round trip).
let pgQueries = 0;
let pgPatched = false;
export function pgQueryCount() {
  if (!pgPatched) {
    const { Client } = requirePeer('pg');
    const query = Client.prototype.query;
    Client.prototype.query = function countedQuery(...args) {
      ++pgQueries;
      return query.apply(this, args);
    };
    pgPatched = true;
  }
  return pgQueries;
}
