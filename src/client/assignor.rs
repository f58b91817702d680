//! Partition assignors, run by the group leader: Kafka's `range`, `roundrobin` and
//! `cooperative-sticky`, producing the same kind of assignment as the Java client's, so Sluice
//! members can share a group with other clients that agree on the protocol name.
//!
//! Input: every member's subscription (and, for cooperative-sticky, what it owned) and the
//! partition count of each subscribed topic. Output: each member's partitions. Members and
//! partitions are sorted first, so every leader computes the same answer.

use std::collections::{BTreeMap, BTreeSet};

use super::consumer_protocol::Subscription;

/// An assignment strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignor {
    /// Per topic, consecutive partition ranges.
    Range,
    /// All partitions dealt out in turn.
    RoundRobin,
    /// Balanced, keeping partitions with their owners; moved partitions are first revoked and
    /// assigned in the next rebalance (incremental cooperative rebalancing, KIP-429).
    CooperativeSticky,
}

impl Assignor {
    /// The protocol name in JoinGroup.
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
            Assignor::CooperativeSticky => "cooperative-sticky",
        }
    }

    /// The assignor named `name`.
    pub fn from_name(name: &str) -> Option<Assignor> {
        [Assignor::Range, Assignor::RoundRobin, Assignor::CooperativeSticky].into_iter().find(|a| a.name() == name)
    }

    /// Whether members keep their partitions through a rebalance.
    pub fn is_cooperative(self) -> bool {
        self == Assignor::CooperativeSticky
    }

    /// Assigns `partitions` (count per topic) to `members`.
    pub fn assign(
        self,
        members: &BTreeMap<String, Subscription>,
        partitions: &BTreeMap<String, i32>,
    ) -> BTreeMap<String, BTreeMap<String, Vec<i32>>> {
        let mut out: BTreeMap<String, BTreeMap<String, Vec<i32>>> =
            members.keys().map(|m| (m.clone(), BTreeMap::new())).collect();
        match self {
            Assignor::Range => range(members, partitions, &mut out),
            Assignor::RoundRobin => round_robin(members, partitions, &mut out),
            Assignor::CooperativeSticky => cooperative_sticky(members, partitions, &mut out),
        }
        for topics in out.values_mut() {
            topics.retain(|_, list| !list.is_empty());
            for list in topics.values_mut() {
                list.sort_unstable();
            }
        }
        out
    }
}

fn subscribers<'a>(members: &'a BTreeMap<String, Subscription>, topic: &str) -> Vec<&'a String> {
    members.iter().filter(|(_, s)| s.topics.iter().any(|t| t == topic)).map(|(m, _)| m).collect()
}

fn range(
    members: &BTreeMap<String, Subscription>,
    partitions: &BTreeMap<String, i32>,
    out: &mut BTreeMap<String, BTreeMap<String, Vec<i32>>>,
) {
    for (topic, &count) in partitions {
        let subs = subscribers(members, topic);
        if subs.is_empty() || count <= 0 {
            continue;
        }
        let n = subs.len() as i32;
        let (each, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, member) in subs.into_iter().enumerate() {
            let take = each + i32::from((i as i32) < extra);
            let list = out.entry(member.clone()).or_default().entry(topic.clone()).or_default();
            list.extend(next..next + take);
            next += take;
        }
    }
}

fn round_robin(
    members: &BTreeMap<String, Subscription>,
    partitions: &BTreeMap<String, i32>,
    out: &mut BTreeMap<String, BTreeMap<String, Vec<i32>>>,
) {
    let all: Vec<&String> = members.keys().collect();
    if all.is_empty() {
        return;
    }
    let mut turn = 0usize;
    for (topic, &count) in partitions {
        for partition in 0..count.max(0) {
            // The next member in turn that subscribes to the topic.
            for _ in 0..all.len() {
                let member = all[turn % all.len()];
                turn += 1;
                if members[member].topics.iter().any(|t| t == topic) {
                    out.entry(member.clone()).or_default().entry(topic.clone()).or_default().push(partition);
                    break;
                }
            }
        }
    }
}

fn cooperative_sticky(
    members: &BTreeMap<String, Subscription>,
    partitions: &BTreeMap<String, i32>,
    out: &mut BTreeMap<String, BTreeMap<String, Vec<i32>>>,
) {
    // Every (topic, partition) that exists and someone subscribes to.
    let mut unassigned: BTreeSet<(String, i32)> = BTreeSet::new();
    for (topic, &count) in partitions {
        if !subscribers(members, topic).is_empty() {
            unassigned.extend((0..count.max(0)).map(|p| (topic.clone(), p)));
        }
    }
    let total = unassigned.len();
    let member_count = members.len().max(1);
    // Balanced: everyone gets `floor` partitions and `total % members` of them one more. A
    // member keeps what it owned up to `floor`, and up to `floor + 1` while such places last,
    // so whatever it held above that is freed for members with less.
    let floor = total / member_count;
    let mut extra_places = total % member_count;
    let mut load: BTreeMap<&String, usize> = members.keys().map(|m| (m, 0)).collect();
    let mut previous_owner: BTreeMap<(String, i32), &String> = BTreeMap::new();
    // The newest generation's claim wins a partition claimed twice.
    let mut claims: Vec<(&String, &Subscription)> = members.iter().collect();
    claims.sort_by_key(|(m, s)| (std::cmp::Reverse(s.generation), *m));
    for (member, subscription) in claims {
        let owned: Vec<(String, i32)> = subscription
            .owned_partitions
            .iter()
            .filter(|(topic, _)| subscription.topics.contains(topic))
            .flat_map(|(topic, ps)| ps.iter().map(move |p| (topic.clone(), *p)))
            .filter(|key| unassigned.contains(key))
            .collect();
        for key in owned {
            previous_owner.entry(key.clone()).or_insert(member);
            let have = load[member];
            let may_keep = have < floor || (have == floor && extra_places > 0);
            if !may_keep {
                continue;
            }
            if have == floor {
                extra_places -= 1;
            }
            unassigned.remove(&key);
            *load.entry(member).or_default() += 1;
            out.entry(member.clone()).or_default().entry(key.0).or_default().push(key.1);
        }
    }
    // The rest to the least loaded subscriber; a partition another member still owns is held
    // back this round (it must be revoked first), which triggers the follow-up rebalance.
    for (topic, p) in unassigned {
        let candidate = load
            .iter()
            .filter(|(m, _)| members[**m].topics.contains(&topic))
            .min_by_key(|(m, l)| (**l, **m))
            .map(|(m, _)| *m);
        let Some(member) = candidate else { continue };
        if previous_owner.get(&(topic.clone(), p)).is_some_and(|owner| *owner != member) {
            continue;
        }
        *load.entry(member).or_default() += 1;
        out.entry(member.clone()).or_default().entry(topic).or_default().push(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(topics: &[&str]) -> Subscription {
        Subscription { topics: topics.iter().map(|t| t.to_string()).collect(), generation: -1, ..Default::default() }
    }

    fn count(assignment: &BTreeMap<String, BTreeMap<String, Vec<i32>>>, member: &str) -> usize {
        assignment.get(member).map_or(0, |t| t.values().map(Vec::len).sum())
    }

    #[test]
    fn range_gives_consecutive_ranges_per_topic_extra_to_the_first() {
        let members = BTreeMap::from([("a".to_string(), sub(&["t"])), ("b".to_string(), sub(&["t"]))]);
        let out = Assignor::Range.assign(&members, &BTreeMap::from([("t".to_string(), 5)]));
        assert_eq!(out["a"]["t"], [0, 1, 2]);
        assert_eq!(out["b"]["t"], [3, 4]);
    }

    #[test]
    fn round_robin_deals_in_turn_and_skips_non_subscribers() {
        let members = BTreeMap::from([
            ("a".to_string(), sub(&["t", "u"])),
            ("b".to_string(), sub(&["t"])),
            ("c".to_string(), sub(&["u"])),
        ]);
        let out = Assignor::RoundRobin.assign(&members, &BTreeMap::from([("t".to_string(), 3), ("u".to_string(), 2)]));
        let all: usize = ["a", "b", "c"].iter().map(|m| count(&out, m)).sum();
        assert_eq!(all, 5);
        assert!(out.get("c").and_then(|t| t.get("t")).is_none(), "c does not subscribe to t");
        assert!(out.get("b").and_then(|t| t.get("u")).is_none(), "b does not subscribe to u");
    }

    #[test]
    fn cooperative_sticky_keeps_owners_and_holds_back_moved_partitions() {
        // a owned all 6; b joins: a keeps 3 (its quota), the other 3 are revoked this round.
        let mut a = sub(&["t"]);
        a.owned_partitions = BTreeMap::from([("t".to_string(), (0..6).collect())]);
        a.generation = 1;
        let members = BTreeMap::from([("a".to_string(), a.clone()), ("b".to_string(), sub(&["t"]))]);
        let topics = BTreeMap::from([("t".to_string(), 6)]);
        let first = Assignor::CooperativeSticky.assign(&members, &topics);
        assert_eq!(first["a"]["t"], [0, 1, 2]);
        assert_eq!(count(&first, "b"), 0, "moved partitions wait until a has revoked them");
        // Next round: a owns 0..3 only; b gets the rest.
        a.owned_partitions = BTreeMap::from([("t".to_string(), vec![0, 1, 2])]);
        a.generation = 2;
        let members = BTreeMap::from([("a".to_string(), a), ("b".to_string(), sub(&["t"]))]);
        let second = Assignor::CooperativeSticky.assign(&members, &topics);
        assert_eq!(second["a"]["t"], [0, 1, 2]);
        assert_eq!(second["b"]["t"], [3, 4, 5]);
    }

    #[test]
    fn cooperative_sticky_frees_partitions_for_a_newcomer_when_everyone_is_within_the_ceiling() {
        // 24 partitions over 10 members (2 or 3 each); an 11th joins: 24 = 11 * 2 + 2, so only
        // two members may keep a third partition and the newcomer ends up with two.
        let topics = BTreeMap::from([("t".to_string(), 24)]);
        let mut members = BTreeMap::new();
        let mut next = 0;
        for m in 0..10 {
            let take = if m < 4 { 3 } else { 2 };
            let mut s = sub(&["t"]);
            s.owned_partitions = BTreeMap::from([("t".to_string(), (next..next + take).collect())]);
            s.generation = 1;
            next += take;
            members.insert(format!("m{m:02}"), s);
        }
        members.insert("new".to_string(), sub(&["t"]));
        let first = Assignor::CooperativeSticky.assign(&members, &topics);
        let kept: usize = members.keys().map(|m| count(&first, m)).sum();
        assert_eq!(kept, 22, "two partitions freed (revoked this round)");
        assert_eq!(count(&first, "new"), 0, "freed partitions wait for the next round");
        // Next round: the owners report what they kept; the newcomer gets the freed two.
        for (m, s) in members.iter_mut() {
            s.owned_partitions = first.get(m).cloned().unwrap_or_default();
            s.generation = 2;
        }
        let second = Assignor::CooperativeSticky.assign(&members, &topics);
        assert_eq!(count(&second, "new"), 2);
        let loads: Vec<usize> = members.keys().map(|m| count(&second, m)).collect();
        assert_eq!(loads.iter().sum::<usize>(), 24);
        assert!(loads.iter().all(|l| (2..=3).contains(l)), "{loads:?}");
    }

    #[test]
    fn names_round_trip() {
        for a in [Assignor::Range, Assignor::RoundRobin, Assignor::CooperativeSticky] {
            assert_eq!(Assignor::from_name(a.name()), Some(a));
        }
        assert_eq!(Assignor::from_name("sticky"), None);
    }
}
