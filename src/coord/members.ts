// etcd's own membership (members are the nodes' store replicas, not keys) and
// what the local member says of itself.
import type { Etcd3 } from 'etcd3';

/** What the local store member says of itself. */
export interface MemberStatus {
  /** Its own member id (decimal). */
  memberId: string;
  /** The member it takes for the leader ('0': none). */
  leader: string;
  /** It is a learner (not yet promoted): it does not vote and serves no linearizable read. */
  isLearner: boolean;
}

export class StoreMembers {
  constructor(private readonly c: Etcd3) {}

  list() {
    return this.c.cluster.memberList({});
  }

  /** Add a learner with this peer URL. */
  addLearner(peerUrl: string) {
    return this.c.cluster.memberAdd({ peerURLs: [peerUrl], isLearner: true });
  }

  async promote(id: string): Promise<void> {
    await this.c.cluster.memberPromote({ ID: id });
  }

  async remove(id: string): Promise<void> {
    await this.c.cluster.memberRemove({ ID: id });
  }

  /** The local member's own id and the leader it sees (etcd's maintenance status). */
  async status(): Promise<MemberStatus> {
    const s = await this.c.maintenance.status();
    return { memberId: String(s.header.member_id), leader: String(s.leader), isLearner: Boolean(s.isLearner) };
  }
}
