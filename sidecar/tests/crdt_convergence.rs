//! Property tests of the CRDT core: simulated replicas issue random writes of every type, updates
//! are delivered in random orders (reordered, duplicated, delayed), and every replica must end in
//! the same state. The state-based join must be commutative, associative and idempotent, and
//! agree with operation delivery.

use proptest::prelude::*;
use syncmesh_replica::crdt::replica::{Delivery, Update};
use syncmesh_replica::crdt::{Blob, Clock, Effect, Op, Replica, Ttl, Value, VersionVector};

const KEYS: &[&[u8]] = &[b"a", b"b", b"c"];
const MEMBERS: &[&[u8]] = &[b"x", b"y", b"z"];

fn blob(b: &[u8]) -> Blob {
    Blob::from_slice(b)
}

/// Any write a command could produce, on a small alphabet so that writes collide.
fn arb_op() -> impl Strategy<Value = Op> {
    let key = prop::sample::select(KEYS);
    let member = prop::sample::select(MEMBERS);
    let effect = prop_oneof![
        (any::<u8>(), prop::sample::select(vec![Ttl::Keep, Ttl::Clear, Ttl::At(5_000)]))
            .prop_map(|(v, ttl)| Effect::Assign { value: Value::from_slice(&[b'0' + v % 10]), ttl }),
        (-5i64..5).prop_map(|n| Effect::Incr { int: n, float: 0.0, is_float: false, ext: None }),
        (0u8..4).prop_map(|n| Effect::Incr { int: 0, float: n as f64 * 0.5, is_float: true, ext: None }),
        Just(Effect::Delete),
        prop::option::of(1_000u64..9_000).prop_map(|deadline| Effect::Expire { deadline }),
        (member.clone(), any::<u8>())
            .prop_map(|(f, v)| Effect::HashSet { fields: vec![(blob(f), blob(&[v]))] }),
        (member.clone(), -3i64..3).prop_map(|(f, n)| Effect::HashIncr {
            ext: None,
            field: blob(f),
            int: n,
            float: 0.0,
            is_float: false
        }),
        member.clone().prop_map(|f| Effect::HashDel { fields: vec![blob(f)] }),
        member.clone().prop_map(|m| Effect::SetAdd { members: vec![blob(m)] }),
        member.clone().prop_map(|m| Effect::SetRem { members: vec![blob(m)] }),
        (member.clone(), -4i32..4).prop_map(|(m, s)| Effect::ZAdd { members: vec![(blob(m), s as f64)] }),
        (member.clone(), 1i32..3).prop_map(|(m, d)| Effect::ZIncr { member: blob(m), delta: d as f64 }),
        member.clone().prop_map(|m| Effect::ZRem { members: vec![blob(m)] }),
        (0u16..64, 1u8..20).prop_map(|(i, r)| Effect::HllAdd { updates: vec![(i, r)] }),
        Just(Effect::Flush),
    ];
    (key, effect, 0u8..2).prop_map(|(k, effect, db)| Op { db, key: blob(k), effect })
}

#[derive(Clone, Debug)]
enum Step {
    /// Replica `r` runs a command that makes these writes (one update).
    Write(usize, Vec<Op>),
    /// Deliver the `n`-th sent update (modulo the number sent) to replica `r`, possibly again.
    Deliver(usize, usize),
    /// Advance causal stability everywhere and compact.
    Stabilize,
    /// Replica `r` runs a list or stream command, computed from what it sees now.
    Event(usize, EventOp),
}

#[derive(Clone, Debug)]
enum EventOp {
    Push { left: bool, v: u8 },
    Pop { left: bool },
    Set { index: u8, v: u8 },
    Insert { index: u8, v: u8 },
    XAdd { ms: u8 },
    XDel { index: u8 },
    GroupCreate { g: u8 },
    GroupDestroy { g: u8 },
    Ack { g: u8, index: u8 },
}

fn arb_event() -> impl Strategy<Value = EventOp> {
    prop_oneof![
        (any::<bool>(), any::<u8>()).prop_map(|(left, v)| EventOp::Push { left, v }),
        any::<bool>().prop_map(|left| EventOp::Pop { left }),
        (any::<u8>(), any::<u8>()).prop_map(|(index, v)| EventOp::Set { index, v }),
        (any::<u8>(), any::<u8>()).prop_map(|(index, v)| EventOp::Insert { index, v }),
        (0u8..20).prop_map(|ms| EventOp::XAdd { ms }),
        any::<u8>().prop_map(|index| EventOp::XDel { index }),
        (0u8..2).prop_map(|g| EventOp::GroupCreate { g }),
        (0u8..2).prop_map(|g| EventOp::GroupDestroy { g }),
        (0u8..2, any::<u8>()).prop_map(|(g, index)| EventOp::Ack { g, index }),
    ]
}

/// The writes a command makes on replica `replica`, given what it sees (as the command layer
/// computes them).
fn event_ops(replica: &Replica, r: usize, e: &EventOp) -> Vec<Op> {
    use syncmesh_replica::crdt::keyspace::Part;
    use syncmesh_replica::crdt::list::position_between;
    use syncmesh_replica::crdt::stream::StreamId;
    use syncmesh_replica::crdt::Dot;
    let list = match replica.db(0).get(b"list").and_then(|e| e.visible()) {
        Some(Part::List(l)) => Some((**l).clone()),
        _ => None,
    };
    let stream = match replica.db(0).get(b"stream").and_then(|e| e.visible()) {
        Some(Part::Stream(s)) => Some((**s).clone()),
        _ => None,
    };
    let op = |key: &[u8], effect| Op { db: 0, key: blob(key), effect };
    let positions: Vec<_> = list.as_ref().map(|l| l.items.keys().cloned().collect()).unwrap_or_default();
    let pick = |i: u8| (!positions.is_empty()).then(|| positions[i as usize % positions.len()].clone());
    match e {
        EventOp::Push { left, v } => {
            let p = if *left {
                position_between(None, positions.first(), Dot::default())
            } else {
                position_between(positions.last(), None, Dot::default())
            };
            vec![op(b"list", Effect::ListInsert { items: vec![(p, blob(&[*v]))] })]
        }
        EventOp::Pop { left } => {
            let p = if *left { positions.first() } else { positions.last() };
            p.map(|p| vec![op(b"list", Effect::ListRemove { positions: vec![p.clone()] })])
                .unwrap_or_default()
        }
        EventOp::Set { index, v } => pick(*index)
            .map(|p| vec![op(b"list", Effect::ListSet { position: p, value: blob(&[*v]) })])
            .unwrap_or_default(),
        EventOp::Insert { index, v } => {
            let i = if positions.is_empty() { 0 } else { *index as usize % positions.len() };
            let p = position_between(positions.get(i), positions.get(i + 1), Dot::default());
            vec![op(b"list", Effect::ListInsert { items: vec![(p, blob(&[*v]))] })]
        }
        EventOp::XAdd { ms } => {
            // Replicas 0 and 2 may pick the same id: the entry with the greater dot wins.
            let last = stream.as_ref().map(|s| s.last_id()).unwrap_or_default();
            let id = StreamId::new(last.ms.max(*ms as u64) + 1, (r % 2) as u64);
            vec![op(b"stream", Effect::StreamAdd { id, fields: vec![(blob(b"f"), blob(&[*ms]))] })]
        }
        EventOp::XDel { index } => stream
            .as_ref()
            .and_then(|s| {
                let ids: Vec<StreamId> = s.entries.keys().copied().collect();
                (!ids.is_empty()).then(|| ids[*index as usize % ids.len()])
            })
            .map(|id| {
                let max_deleted = stream.as_ref().map(|s| s.max_deleted_id()).unwrap_or_default().max(id);
                vec![op(b"stream", Effect::StreamDel { ids: vec![id], max_deleted })]
            })
            .unwrap_or_default(),
        EventOp::GroupCreate { g } => {
            let exists = stream.as_ref().is_some_and(|s| s.groups.contains_key(&[b'g', *g][..]));
            if exists {
                return vec![];
            }
            vec![op(
                b"stream",
                Effect::GroupCreate { group: blob(&[b'g', *g]), last: StreamId::MIN, entries_read: None },
            )]
        }
        EventOp::GroupDestroy { g } => {
            let exists = stream.as_ref().is_some_and(|s| s.groups.contains_key(&[b'g', *g][..]));
            if exists {
                vec![op(b"stream", Effect::GroupDestroy { group: blob(&[b'g', *g]) })]
            } else {
                vec![]
            }
        }
        EventOp::Ack { g, index } => stream
            .as_ref()
            .filter(|s| s.groups.contains_key(&[b'g', *g][..]) && !s.entries.is_empty())
            .map(|s| {
                let ids: Vec<StreamId> = s.entries.keys().copied().collect();
                let id = ids[*index as usize % ids.len()];
                vec![op(b"stream", Effect::GroupAck { group: blob(&[b'g', *g]), ids: vec![id] })]
            })
            .unwrap_or_default(),
    }
}

fn arb_steps(replicas: usize) -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        4 => (0..replicas, prop::collection::vec(arb_op(), 1..3)).prop_map(|(r, ops)| Step::Write(r, ops)),
        5 => (0..replicas, any::<usize>()).prop_map(|(r, n)| Step::Deliver(r, n)),
        1 => Just(Step::Stabilize),
        3 => (0..replicas, arb_event()).prop_map(|(r, e)| Step::Event(r, e)),
    ];
    prop::collection::vec(step, 1..60)
}

struct Sim {
    replicas: Vec<Replica>,
    sent: Vec<Update>,
    /// `delivered[i][n]`: update `n` has been applied at replica `i`.
    delivered: Vec<Vec<bool>>,
    buffers: Vec<Vec<usize>>,
    now: u64,
}

impl Sim {
    fn new(n: usize) -> Sim {
        let replicas = (0..n)
            .map(|i| {
                // Replicas' clocks disagree by up to a few seconds: HLC must cope.
                let mut r = Replica::new(0x100 + i as u64, Clock::new(i as i64 * 1_500 - 2_000));
                r.set_replicated(true);
                r
            })
            .collect();
        Sim { replicas, sent: vec![], delivered: vec![vec![]; n], buffers: vec![vec![]; n], now: 1_000 }
    }

    fn run(&mut self, step: &Step) {
        self.now += 7;
        match step {
            Step::Write(r, ops) => {
                for op in ops {
                    self.replicas[*r].write(op.clone(), self.now);
                }
                let update = self.replicas[*r].take_update().expect("writes recorded");
                self.sent.push(update);
                for (i, d) in self.delivered.iter_mut().enumerate() {
                    d.push(i == *r);
                }
            }
            Step::Event(r, e) => {
                let ops = event_ops(&self.replicas[*r], *r, e);
                if !ops.is_empty() {
                    self.run(&Step::Write(*r, ops));
                }
            }
            Step::Deliver(r, n) => {
                if !self.sent.is_empty() {
                    let n = n % self.sent.len();
                    self.buffers[*r].push(n);
                    self.drain(*r);
                }
            }
            Step::Stabilize => {
                let stable = self.stable();
                for r in &mut self.replicas {
                    r.set_stable(stable.clone());
                    r.compact();
                }
            }
        }
    }

    /// Applies whatever buffered updates have become causally ready at replica `r`.
    fn drain(&mut self, r: usize) {
        loop {
            let mut progressed = false;
            let buffered = std::mem::take(&mut self.buffers[r]);
            for n in buffered {
                match self.replicas[r].deliver(&self.sent[n]) {
                    Delivery::Applied => {
                        self.delivered[r][n] = true;
                        progressed = true;
                    }
                    Delivery::Duplicate => {
                        assert!(self.delivered[r][n], "duplicate of an update never applied")
                    }
                    Delivery::NotReady => self.buffers[r].push(n),
                }
            }
            if !progressed {
                return;
            }
        }
    }

    /// What every replica has observed and what no in-flight update can still be concurrent with.
    fn stable(&self) -> VersionVector {
        let mut frontier: Option<VersionVector> = None;
        for (j, replica) in self.replicas.iter().enumerate() {
            let origin = replica.id;
            let earliest_in_flight = self
                .sent
                .iter()
                .enumerate()
                .find(|(n, u)| u.origin == origin && self.delivered.iter().any(|d| !d[*n]))
                .map(|(_, u)| u.deps.clone());
            let v = earliest_in_flight.unwrap_or_else(|| self.replicas[j].version_vector().clone());
            let all_seen = self.replicas.iter().fold(v, |acc, r| acc.meet(r.version_vector()));
            frontier = Some(match frontier {
                None => all_seen,
                Some(f) => f.meet(&all_seen),
            });
        }
        frontier.unwrap_or_default()
    }

    fn deliver_everything(&mut self) {
        for r in 0..self.replicas.len() {
            self.buffers[r] = (0..self.sent.len()).collect();
        }
        for _ in 0..self.sent.len() + 1 {
            for r in 0..self.replicas.len() {
                self.drain(r);
            }
        }
        for r in 0..self.replicas.len() {
            assert!(self.buffers[r].is_empty(), "replica {r} could not apply {:?}", self.buffers[r]);
        }
    }
}

fn digest(r: &Replica) -> u128 {
    r.digest(0)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn any_delivery_order_converges(steps in arb_steps(3)) {
        let mut sim = Sim::new(3);
        for s in &steps {
            sim.run(s);
        }
        sim.deliver_everything();
        let d0 = digest(&sim.replicas[0]);
        for r in &sim.replicas[1..] {
            prop_assert_eq!(digest(r), d0);
        }
        // Stability after full delivery must not change what anyone sees.
        sim.run(&Step::Stabilize);
        for r in &sim.replicas {
            prop_assert_eq!(digest(r), d0);
        }
    }

    #[test]
    fn join_is_commutative_associative_idempotent_and_matches_delivery(steps in arb_steps(3)) {
        let mut sim = Sim::new(3);
        // Stream events are left out here: the state-based join of consumer groups does not yet
        // agree with operation delivery in every case (an open point in docs/design.md; joins
        // are only used to install snapshots). Delivery of stream operations is covered above.
        let is_stream = |e: &EventOp| {
            matches!(
                e,
                EventOp::XAdd { .. } | EventOp::XDel { .. } | EventOp::GroupCreate { .. } | EventOp::GroupDestroy { .. } | EventOp::Ack { .. }
            )
        };
        for s in steps.iter().filter(|s| !matches!(s, Step::Stabilize) && !matches!(s, Step::Event(_, e) if is_stream(e))) {
            sim.run(s);
        }
        let (a, b, c) = (sim.replicas[0].clone(), sim.replicas[1].clone(), sim.replicas[2].clone());
        let join = |x: &Replica, y: &Replica| { let mut z = x.clone(); z.join(y); z };

        prop_assert_eq!(digest(&join(&a, &b)), digest(&join(&b, &a)));
        prop_assert_eq!(digest(&join(&join(&a, &b), &c)), digest(&join(&a, &join(&b, &c))));
        prop_assert_eq!(digest(&join(&a, &a)), digest(&a));

        let all = join(&join(&a, &b), &c);
        sim.deliver_everything();
        prop_assert_eq!(digest(&all), digest(&sim.replicas[0]));
    }
}

#[test]
fn a_set_that_did_not_see_an_increment_keeps_it() {
    let mut sim = Sim::new(2);
    let key = || blob(b"n");
    sim.run(&Step::Write(
        0,
        vec![Op {
            db: 0,
            key: key(),
            effect: Effect::Incr { int: 5, float: 0.0, is_float: false, ext: None },
        }],
    ));
    sim.run(&Step::Write(
        1,
        vec![Op {
            db: 0,
            key: key(),
            effect: Effect::Assign { value: Value::from_slice(b"100"), ttl: Ttl::Clear },
        }],
    ));
    sim.deliver_everything();
    for r in &sim.replicas {
        let e = r.db(0).get(b"n").unwrap();
        match e.visible().unwrap() {
            syncmesh_replica::crdt::keyspace::Part::Str(c) => {
                assert_eq!(&*syncmesh_replica::crdt::keyspace::string_value(c), b"105")
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Writes a sequential model can check: increments of one counter and adds to one set (with
/// removes of members never added, which must not remove anything).
fn arb_model_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1i64..10).prop_map(|n| Op {
            db: 0,
            key: blob(b"counter"),
            effect: Effect::Incr { int: n, float: 0.0, is_float: false, ext: None }
        }),
        (0u32..1000).prop_map(|m| Op {
            db: 0,
            key: blob(b"set"),
            effect: Effect::SetAdd { members: vec![blob(m.to_string().as_bytes())] }
        }),
        (1000u32..1100).prop_map(|m| Op {
            db: 0,
            key: blob(b"set"),
            effect: Effect::SetRem { members: vec![blob(m.to_string().as_bytes())] }
        }),
        arb_op(),
    ]
}

#[derive(Clone, Debug)]
enum NetStep {
    Write(usize, Op),
    /// Deliver update `n` to replica `r`; `lost` drops it instead (it is resent later, as
    /// anti-entropy does); a partition blocks delivery between the two halves.
    Deliver {
        r: usize,
        n: usize,
        lost: bool,
    },
    Partition(usize),
    Heal,
    Stabilize,
    Event(usize, EventOp),
}

fn arb_net(replicas: usize) -> impl Strategy<Value = Vec<NetStep>> {
    let step = prop_oneof![
        4 => (0..replicas, arb_model_op()).prop_map(|(r, op)| NetStep::Write(r, op)),
        6 => (0..replicas, any::<usize>(), prop::bool::weighted(0.2)).prop_map(|(r, n, lost)| NetStep::Deliver { r, n, lost }),
        1 => (1..replicas).prop_map(NetStep::Partition),
        1 => Just(NetStep::Heal),
        1 => Just(NetStep::Stabilize),
        2 => (0..replicas, arb_event()).prop_map(|(r, e)| NetStep::Event(r, e)),
    ];
    prop::collection::vec(step, 1..120)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    /// 3 to 5 replicas, messages lost (and resent), duplicated, reordered, partitions that heal:
    /// everyone converges, the counter is the sum of all increments, and every member added is
    /// present (the only removes target members nobody added).
    #[test]
    fn lossy_partitioned_networks_converge_to_the_sequential_model(n in 3usize..=5, steps in arb_net(5)) {
        let mut sim = Sim::new(n);
        let mut split: Option<usize> = None;
        let mut increments = 0i64;
        let mut added: Vec<Blob> = vec![];
        let mut others = false;
        for s in &steps {
            match s {
                NetStep::Write(r, op) => {
                    let r = r % n;
                    match &op.effect {
                        Effect::Incr { int, .. } if op.key[..] == b"counter"[..] => increments += int,
                        Effect::SetAdd { members } if op.key[..] == b"set"[..] => added.extend(members.iter().cloned()),
                        Effect::SetRem { .. } if op.key[..] == b"set"[..] => {}
                        // A flush, or another write to the model's keys, takes the model out of play.
                        _ => others |= op.key[..] == b"counter"[..] || op.key[..] == b"set"[..] || op.effect == Effect::Flush,
                    }
                    sim.run(&Step::Write(r, vec![op.clone()]));
                }
                NetStep::Deliver { r, n: u, lost } => {
                    let r = r % n;
                    if sim.sent.is_empty() || *lost {
                        continue;
                    }
                    let u = u % sim.sent.len();
                    let origin = sim.replicas.iter().position(|x| x.id == sim.sent[u].origin).unwrap();
                    if let Some(cut) = split {
                        if (origin < cut) != (r < cut) {
                            continue; // partitioned
                        }
                    }
                    sim.run(&Step::Deliver(r, u));
                }
                NetStep::Partition(cut) => split = Some(cut % n).filter(|c| *c > 0),
                NetStep::Heal => split = None,
                NetStep::Stabilize => sim.run(&Step::Stabilize),
                NetStep::Event(r, e) => sim.run(&Step::Event(r % n, e.clone())),
            }
        }
        sim.deliver_everything();
        let d0 = digest(&sim.replicas[0]);
        for r in &sim.replicas {
            prop_assert_eq!(digest(r), d0);
        }
        if !others {
            use syncmesh_replica::crdt::keyspace::{string_value, Part};
            let e = sim.replicas[0].db(0).get(b"counter");
            let shown = match e.and_then(|e| e.visible()) {
                Some(Part::Str(c)) => String::from_utf8(string_value(c).to_vec()).unwrap().parse::<i64>().unwrap(),
                _ => 0,
            };
            prop_assert_eq!(shown, increments);
            for m in &added {
                let present = matches!(sim.replicas[0].db(0).get(b"set").and_then(|e| e.visible()), Some(Part::Set(s)) if s.members.contains_key(m.as_slice()));
                prop_assert!(present, "member {:?} was lost", m);
            }
        }
    }
}
