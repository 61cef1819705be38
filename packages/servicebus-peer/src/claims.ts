import { randomBytes } from 'node:crypto';
import type { Connection, Message } from 'rhea';
import { normalise } from './addresses.js';
import { readJwt, signJwt } from './jwt.js';
import type { PeerSettings } from './peer-options.js';
import type { PeerState } from './peer-state.js';
import { type PeerRight, readSasToken } from './sas.js';

/**
 * Who may do what: shared access keys and Entra ID identities with their rights, the claims a
 * connection puts through CBS, and the test credential that issues the peer's JWTs.
 */

/** A token credential (`TokenCredential` of @azure/core-auth) issuing the peer's JWTs. */
export interface PeerCredential {
  getToken(scopes: string | string[]): Promise<{ token: string; expiresOnTimestamp: number }>;
  /** Tokens issued so far: more than one shows the SDK renewed its claim. */
  readonly tokensIssued: number;
}

/** The namespace's keys and identities with their rights, and the secret its JWTs are signed with. */
export interface Keyring {
  readonly keys: Map<string, string>;
  readonly rightsOf: Map<string, ReadonlySet<PeerRight>>;
  readonly identityRights: Map<string, ReadonlySet<PeerRight>>;
  readonly jwtSecret: Buffer;
}

export function createKeyring(settings: PeerSettings): Keyring {
  const keys = new Map([[settings.keyName, settings.key]]);
  const rightsOf = new Map<string, ReadonlySet<PeerRight>>([
    [settings.keyName, new Set<PeerRight>(['Manage', 'Send', 'Listen'])],
  ]);
  for (const policy of settings.keys ?? []) {
    keys.set(policy.name, policy.key);
    const rights = new Set<PeerRight>(policy.rights);
    if (rights.has('Manage')) {
      rights.add('Send');
      rights.add('Listen');
    }
    rightsOf.set(policy.name, rights);
  }
  const jwtSecret = randomBytes(32);
  const identityRights = new Map<string, ReadonlySet<PeerRight>>();
  for (const identity of settings.identities ?? []) {
    const rights = new Set<PeerRight>(identity.rights);
    if (rights.has('Manage')) {
      rights.add('Send');
      rights.add('Listen');
    }
    identityRights.set(identity.name, rights);
  }
  return { keys, rightsOf, identityRights, jwtSecret };
}

/**
 * Claims put on each connection through CBS: the entity path a token was signed for ('' for
 * the namespace), the rights of its key, and when it expires. A link is authorized by a claim
 * on its path or a parent of it (a namespace-wide token covers every entity).
 */
export interface Claim {
  readonly path: string;
  readonly rights: ReadonlySet<PeerRight>;
  readonly expiresAt: number;
}

export type Grant =
  | { verdict: 'ok'; path: string; rights: ReadonlySet<PeerRight>; expiresAt: number }
  | { verdict: 'invalid' | 'expired' };

/**
 * What a token grants: a SAS token its key's rights on the entity (or namespace) it was signed
 * for; an Entra ID JWT its identity's rights on the whole namespace (role assignments at
 * namespace scope).
 */
export function grantOf(keyring: Keyring, token: string): Grant {
  const { keys, rightsOf, identityRights, jwtSecret } = keyring;
  if (token.startsWith('SharedAccessSignature ')) {
    const sas = readSasToken(token, keys);
    if (sas.verdict !== 'ok') return { verdict: sas.verdict };
    return {
      verdict: 'ok',
      path: normalise(sas.resource),
      rights: rightsOf.get(sas.keyName as string) ?? new Set(),
      expiresAt: sas.expiresAt as number,
    };
  }
  const jwt = readJwt(token.replace(/^Bearer /, ''), jwtSecret);
  if (jwt.verdict !== 'ok') return { verdict: jwt.verdict };
  return {
    verdict: 'ok',
    path: '',
    rights: identityRights.get(jwt.identity as string) ?? new Set(),
    expiresAt: jwt.expiresAt as number,
  };
}

/** Whether a claim on `connection` for `address` (or a parent of it) carries `right` now. */
export function authorized(
  state: PeerState,
  connection: Connection,
  address: string,
  right: PeerRight,
): boolean {
  const path = normalise(address);
  const now = Date.now();
  return (state.claims.get(connection) ?? []).some(
    (claim) =>
      claim.expiresAt > now &&
      claim.rights.has(right) &&
      (claim.path === '' || path === claim.path || path.startsWith(`${claim.path}/`)),
  );
}

export function handleCbs(state: PeerState, connection: Connection, request: Message): void {
  const { claims, counters, replyLinks } = state;
  // CBS put-token (@azure/core-amqp src/cbs.ts, negotiateClaim): answer on the link named by
  // reply_to with status-code 202 and the request's message id as correlation id.
  const token = typeof request.body === 'string' ? request.body : '';
  const grant = grantOf(state.keyring, token);
  const verdict = grant.verdict;
  if (grant.verdict === 'ok') {
    counters.tokensPut++;
    let held = claims.get(connection);
    if (held === undefined) {
      held = [];
      claims.set(connection, held);
    }
    // A renewed token replaces the one for the same audience.
    const index = held.findIndex((claim) => claim.path === grant.path);
    if (index >= 0) held.splice(index, 1);
    held.push({ path: grant.path, rights: grant.rights, expiresAt: grant.expiresAt });
  }
  const links = replyLinks.get(connection);
  const link = links?.get(String(request.reply_to));
  if (link === undefined) return;
  link.send({
    correlation_id: request.message_id as string,
    body: undefined,
    application_properties:
      verdict === 'ok'
        ? { 'status-code': 202, 'status-description': 'Accepted' }
        : {
            'status-code': 401,
            'status-description': `InvalidSignature: the token ${verdict === 'expired' ? 'has expired' : 'has an invalid signature'}.`,
            'error-condition': 'amqp:unauthorized-access',
          },
  });
}

/** A credential for one of the `identities` (`peer.credentialFor`). */
export function credentialFor(
  keyring: Keyring,
  identity: string,
  credentialOptions: { readonly lifetimeMs?: number; readonly tokenLifetimeMs?: number } = {},
): PeerCredential {
  const { identityRights, jwtSecret } = keyring;
  if (!identityRights.has(identity)) {
    throw new Error(`The peer has no identity named '${identity}'.`);
  }
  const lifetimeMs = credentialOptions.lifetimeMs ?? 3_600_000;
  const tokenLifetimeMs = credentialOptions.tokenLifetimeMs ?? lifetimeMs;
  let issued = 0;
  return {
    get tokensIssued() {
      return issued;
    },
    async getToken() {
      issued++;
      const expiresOnTimestamp = Date.now() + lifetimeMs;
      return {
        token: signJwt(
          { oid: identity, exp: Math.floor((Date.now() + tokenLifetimeMs) / 1000) },
          jwtSecret,
        ),
        expiresOnTimestamp,
      };
    },
  };
}
