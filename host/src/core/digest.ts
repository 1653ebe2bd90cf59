/** SHA-256, the one digest ICE uses: component identity, policy digest, cache integrity, ledger chain. */
import * as crypto from 'node:crypto';

// Node >= 20.12 has a one-shot `crypto.hash`, about twice as fast as createHash for small inputs
// (@types/node 20 does not declare it yet). The ledger hashes one record per import call.
const oneShotHash = (crypto as unknown as { hash?: (algorithm: string, data: string | Uint8Array, encoding: 'hex') => string })
  .hash;

/** SHA-256 hex of a string's UTF-8 bytes, or of bytes. */
export const sha256Hex: (data: string | Uint8Array) => string = oneShotHash
  ? (data) => oneShotHash('sha256', data, 'hex')
  : (data) => crypto.createHash('sha256').update(data).digest('hex');
