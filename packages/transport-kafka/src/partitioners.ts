import type { ICustomPartitioner, Message, PartitionAssigner } from 'kafkajs';
import { AssignerProtocol, Partitioners } from 'kafkajs';

/**
 * Round robin over the members that read each topic, as Kafka's Java RoundRobinAssignor does.
 * kafkajs's own spreads the leader's topics over every member: in a rolling deploy that adds an
 * event handler, an old leader never assigns the new event's topic, and a new leader hands its
 * partitions to old members, which drop them. Same protocol name and metadata as kafkajs's, so
 * members of either kind agree on a protocol.
 */
export const subscriberRoundRobin: PartitionAssigner = ({ cluster }) => ({
  name: 'RoundRobinAssigner',
  version: 0,
  async assign({ members }) {
    const readers = new Map<string, string[]>();
    for (const member of members) {
      const metadata = AssignerProtocol.MemberMetadata.decode(member.memberMetadata);
      for (const topic of metadata?.topics ?? []) {
        readers.set(topic, [...(readers.get(topic) ?? []), member.memberId]);
      }
    }
    // Partition counts of topics only other members read.
    await cluster.addMultipleTargetTopics([...readers.keys()]);
    const assignment = new Map<string, Record<string, number[]>>();
    let turn = 0;
    for (const topic of [...readers.keys()].sort()) {
      const ids = (readers.get(topic) as string[]).sort();
      for (const { partitionId } of cluster.findTopicPartitionMetadata(topic)) {
        const memberId = ids[turn++ % ids.length] as string;
        let topics = assignment.get(memberId);
        if (topics === undefined) {
          topics = {};
          assignment.set(memberId, topics);
        }
        const partitions = topics[topic] ?? [];
        partitions.push(partitionId);
        topics[topic] = partitions;
      }
    }
    return members.map(({ memberId }) => ({
      memberId,
      memberAssignment: AssignerProtocol.MemberAssignment.encode({
        version: 0,
        assignment: assignment.get(memberId) ?? {},
        userData: Buffer.alloc(0),
      }),
    }));
  },
  protocol({ topics }) {
    return {
      name: 'RoundRobinAssigner',
      metadata: AssignerProtocol.MemberMetadata.encode({
        version: 0,
        topics,
        userData: Buffer.alloc(0),
      }),
    };
  },
});

/** Who a member of an exclusive group is: when its consumer was made, and a random token. */
interface Claim {
  readonly since: number;
  readonly token: string;
}

const claimOf = (userData: Buffer | undefined): Claim => {
  const [since, token] = (userData?.toString('utf8') ?? '').split('/');
  // A member without a claim (a version before claims) counts as the oldest.
  return { since: Number(since) || 0, token: token ?? '' };
};

/**
 * For groups meant to have one member (an instance's reply group): every partition to the member
 * that has been in the group longest, none to the others. A second process that was given the same
 * instance id then takes no replies from the first (round robin would split them, each side
 * dropping the other's as unmatched), and takes over once the first leaves. Same protocol name as
 * `subscriberRoundRobin`, so members of versions before this one still join.
 */
export const longestMember =
  (self: Claim, onShared: (owner: boolean) => void): PartitionAssigner =>
  ({ cluster }) => ({
    name: 'RoundRobinAssigner',
    version: 0,
    async assign({ members, topics }) {
      const claims = members.map((member) => ({
        memberId: member.memberId,
        claim: claimOf(AssignerProtocol.MemberMetadata.decode(member.memberMetadata)?.userData),
      }));
      const oldest = claims.reduce((best, next) =>
        next.claim.since < best.claim.since ||
        (next.claim.since === best.claim.since && next.memberId < best.memberId)
          ? next
          : best,
      );
      await cluster.addMultipleTargetTopics(topics);
      const all: Record<string, number[]> = {};
      for (const topic of topics) {
        all[topic] = cluster.findTopicPartitionMetadata(topic).map((p) => p.partitionId);
      }
      if (members.length > 1) onShared(oldest.claim.token === self.token);
      return members.map(({ memberId }) => ({
        memberId,
        memberAssignment: AssignerProtocol.MemberAssignment.encode({
          version: 0,
          assignment: memberId === oldest.memberId ? all : {},
          userData: Buffer.alloc(0),
        }),
      }));
    },
    protocol({ topics }) {
      return {
        name: 'RoundRobinAssigner',
        metadata: AssignerProtocol.MemberMetadata.encode({
          version: 0,
          topics,
          userData: Buffer.from(`${self.since}/${self.token}`),
        }),
      };
    },
  });

/**
 * Keyed records are hashed like Kafka's Java client does (murmur2), so other producers agree on
 * their partition; the rest go round-robin over the partitions with a leader. kafkajs's murmur2
 * runs on 64-bit emulation and costs more per record than the rest of the produce path.
 */
export function spreadingPartitioner(keyed: WeakSet<Message>): ICustomPartitioner {
  return () => {
    const byKey = Partitioners.DefaultPartitioner();
    const counters = new Map<string, number>();
    return (args) => {
      if (keyed.has(args.message)) return byKey(args);
      const partitions = args.partitionMetadata;
      const start = counters.get(args.topic) ?? Math.floor(Math.random() * partitions.length);
      counters.set(args.topic, start + 1);
      for (let i = 0; i < partitions.length; i++) {
        const candidate = partitions[(start + i) % partitions.length];
        if (candidate !== undefined && candidate.leader >= 0) return candidate.partitionId;
      }
      // No partition has a leader right now: any will do, the produce is retried on fresh metadata.
      return partitions[start % partitions.length]?.partitionId ?? 0;
    };
  };
}
