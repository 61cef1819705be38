/** One key's attempts in this process. */
interface KeyState {
  /** Attempts between their claim's start and their end. */
  active: number;
  /** Attempts that claimed the key and are not over. */
  holding: number;
  /** Claims ever made while the entry lived: tells a waiting attempt that one happened meanwhile. */
  claims: number;
}

/** What an attempt saw when it started to claim. */
export interface LocalClaim {
  readonly key: string;
  readonly state: KeyState;
  readonly heldAtStart: boolean;
  readonly claimsAtStart: number;
  claimed: boolean;
}

/**
 * The keys this process's attempts are claiming or hold. A copy of a message that finds its key
 * committed while an attempt of this process claimed it (before or during the copy's wait on
 * the row lock) leaves the dispatch to that attempt, which abandons its message if the dispatch
 * fails: nothing is lost, and a message received twice at once is not sent twice. A copy with
 * no such attempt here may be the redelivery of a process that died after its commit: it
 * dispatches the record itself.
 */
export class LocalClaims {
  private readonly keys = new Map<string, KeyState>();

  enter(key: string): LocalClaim {
    let state = this.keys.get(key);
    if (state === undefined) {
      state = { active: 0, holding: 0, claims: 0 };
      this.keys.set(key, state);
    }
    state.active++;
    return {
      key,
      state,
      heldAtStart: state.holding > 0,
      claimsAtStart: state.claims,
      claimed: false,
    };
  }

  claimed(claim: LocalClaim): void {
    claim.claimed = true;
    claim.state.holding++;
    claim.state.claims++;
  }

  /** Another attempt of this process held or took the key while this one claimed it. */
  claimedByAnother(claim: LocalClaim): boolean {
    return (
      claim.heldAtStart || claim.state.holding > 0 || claim.state.claims !== claim.claimsAtStart
    );
  }

  leave(claim: LocalClaim): void {
    if (claim.claimed) claim.state.holding--;
    claim.state.active--;
    if (claim.state.active === 0) this.keys.delete(claim.key);
  }
}
