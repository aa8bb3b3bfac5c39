use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;

use super::*;

fn scheduler() -> Arc<Scheduler> {
    Scheduler::new(SchedulerSettings {
        queue: QueueLimits {
            max_size: 4,
            timeout: Duration::from_secs(1),
        },
        model_queues: HashMap::new(),
        model_slots: HashMap::new(),
    })
}

fn llm(id: &str, parallel: Option<u32>) -> InstanceSpec {
    InstanceSpec {
        id: id.to_string(),
        kind: ModelKind::Llm,
        parallel,
    }
}

fn three_instances() -> Arc<Scheduler> {
    let scheduler = scheduler();
    scheduler.sync_upstream(0, &[llm("m", None), llm("m:2", None), llm("m:3", None)]);
    scheduler
}

fn model(name: &str) -> Target {
    Target::Model(Arc::from(name))
}

fn granted(acquire: Acquire) -> SlotGuard {
    match acquire {
        Acquire::Granted(guard) => guard,
        _ => panic!("expected a granted slot"),
    }
}

fn queued(acquire: Acquire) -> Ticket {
    match acquire {
        Acquire::Queued(ticket) => ticket,
        _ => panic!("expected a queue ticket"),
    }
}

fn in_flight(scheduler: &Scheduler, id: &str) -> u32 {
    scheduler
        .snapshot()
        .instances
        .iter()
        .find(|i| i.id == id)
        .unwrap()
        .in_flight
}

#[test]
fn spreads_over_idle_instances() {
    let scheduler = three_instances();
    let guards: Vec<_> = (0..3)
        .map(|_| granted(scheduler.acquire(&model("m"))))
        .collect();
    let mut ids: Vec<_> = guards.iter().map(|g| g.instance().to_string()).collect();
    ids.sort();
    assert_eq!(ids, ["m", "m:2", "m:3"]);
    assert!(matches!(scheduler.acquire(&model("m")), Acquire::Queued(_)));
}

#[test]
fn ties_rotate_between_idle_instances() {
    let scheduler = three_instances();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let guard = granted(scheduler.acquire(&model("m")));
        seen.push(guard.instance().to_string());
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3, "each idle instance takes a turn: {seen:?}");
}

#[test]
fn least_loaded_by_ratio_of_slots() {
    let scheduler = scheduler();
    scheduler.sync_upstream(0, &[llm("m", Some(4)), llm("m:2", Some(1))]);
    let first = granted(scheduler.acquire(&model("m")));
    let second = granted(scheduler.acquire(&model("m")));
    // Whichever went first, the one-slot instance is then full or the four-slot one is at 1/4.
    let mut ids = vec![first.instance().to_string(), second.instance().to_string()];
    ids.sort();
    assert_eq!(ids, ["m", "m:2"]);
    let third = granted(scheduler.acquire(&model("m")));
    assert_eq!(&**third.instance(), "m");
}

#[test]
fn freed_slot_goes_to_queue_head() {
    let scheduler = scheduler();
    scheduler.sync_upstream(0, &[llm("m", None)]);
    let busy = granted(scheduler.acquire(&model("m")));
    let mut first = queued(scheduler.acquire(&model("m")));
    let mut second = queued(scheduler.acquire(&model("m")));

    drop(busy);
    let handed = first.receiver.try_recv();
    assert!(handed.is_ok(), "the oldest waiter gets the slot");
    assert!(
        second.receiver.try_recv().is_err(),
        "the next one keeps waiting"
    );
    assert_eq!(in_flight(&scheduler, "m"), 1);
}

#[test]
fn handed_over_slot_freed_when_waiter_gone() {
    let scheduler = scheduler();
    scheduler.sync_upstream(0, &[llm("m", None)]);
    let busy = granted(scheduler.acquire(&model("m")));
    let ticket = queued(scheduler.acquire(&model("m")));
    drop(busy);
    drop(ticket);
    assert_eq!(in_flight(&scheduler, "m"), 0);
    assert_eq!(scheduler.snapshot().total_queued, 0);
}

#[test]
fn cancelled_ticket_leaves_queue() {
    let scheduler = scheduler();
    scheduler.sync_upstream(0, &[llm("m", None)]);
    let busy = granted(scheduler.acquire(&model("m")));
    let ticket = queued(scheduler.acquire(&model("m")));
    assert_eq!(scheduler.snapshot().total_queued, 1);
    drop(ticket);
    assert_eq!(scheduler.snapshot().total_queued, 0);
    drop(busy);
    assert_eq!(in_flight(&scheduler, "m"), 0);
}

#[test]
fn pinned_request_waits_for_its_instance() {
    let scheduler = scheduler();
    scheduler.sync_upstream(0, &[llm("m", None), llm("m:2", None)]);
    let pinned_target = Target::Instance(Arc::from("m:2"));
    let on_two = granted(scheduler.acquire(&pinned_target));
    let mut pinned = queued(scheduler.acquire(&pinned_target));

    let on_one = granted(scheduler.acquire(&model("m")));
    assert_eq!(&**on_one.instance(), "m");
    drop(on_one);
    assert!(
        pinned.receiver.try_recv().is_err(),
        "a slot on m is no use to m:2"
    );

    drop(on_two);
    let guard = pinned.receiver.try_recv().expect("m:2 freed");
    assert_eq!(&**guard.instance(), "m:2");
}

#[test]
fn pinned_waiter_does_not_block_model_waiters() {
    let scheduler = scheduler();
    scheduler.sync_upstream(0, &[llm("m", None), llm("m:2", None)]);
    let a = granted(scheduler.acquire(&model("m")));
    let b = granted(scheduler.acquire(&model("m")));
    let busy_one = if &**a.instance() == "m" { a } else { b };
    let mut pinned = queued(scheduler.acquire(&Target::Instance(Arc::from("m:2"))));
    let mut any = queued(scheduler.acquire(&model("m")));

    drop(busy_one);
    assert!(pinned.receiver.try_recv().is_err());
    assert_eq!(&**any.receiver.try_recv().expect("m freed").instance(), "m");
}

#[test]
fn queue_bounded() {
    let scheduler = scheduler();
    scheduler.sync_upstream(0, &[llm("m", None)]);
    let _busy = granted(scheduler.acquire(&model("m")));
    let _tickets: Vec<_> = (0..4)
        .map(|_| queued(scheduler.acquire(&model("m"))))
        .collect();
    assert!(matches!(
        scheduler.acquire(&model("m")),
        Acquire::QueueFull { max: 4 }
    ));
}

#[test]
fn down_upstream_leaves_rotation() {
    let scheduler = scheduler();
    scheduler.sync_upstream(0, &[llm("m", None)]);
    scheduler.sync_upstream(1, &[llm("m", None)]);
    assert_eq!(scheduler.set_upstream_down(0), ["m"]);
    for _ in 0..3 {
        let guard = granted(scheduler.acquire(&model("m")));
        assert_eq!(guard.upstream(), 1);
    }
    scheduler.set_upstream_down(1);
    assert!(matches!(
        scheduler.acquire(&model("m")),
        Acquire::Unavailable
    ));
}

#[test]
fn new_instance_serves_queue() {
    let scheduler = scheduler();
    scheduler.sync_upstream(0, &[llm("m", None)]);
    let _busy = granted(scheduler.acquire(&model("m")));
    let mut ticket = queued(scheduler.acquire(&model("m")));
    let changes = scheduler.sync_upstream(0, &[llm("m", None), llm("m:2", None)]);
    assert_eq!(changes.added, ["m:2"]);
    assert_eq!(
        &**ticket.receiver.try_recv().expect("m:2 appeared").instance(),
        "m:2"
    );
}

#[test]
fn sync_reports_changes_only_once() {
    let scheduler = scheduler();
    let first = scheduler.sync_upstream(0, &[llm("m", None), llm("m:2", None)]);
    assert_eq!(first.added, ["m", "m:2"]);
    assert!(
        scheduler
            .sync_upstream(0, &[llm("m", None), llm("m:2", None)])
            .is_empty()
    );
    let removed = scheduler.sync_upstream(0, &[llm("m", None)]);
    assert_eq!(removed.removed, ["m:2"]);
    let resized = scheduler.sync_upstream(0, &[llm("m", Some(4))]);
    assert_eq!(resized.resized, ["m"]);
}

#[test]
fn configured_slots_override_reported() {
    let scheduler = Scheduler::new(SchedulerSettings {
        queue: QueueLimits {
            max_size: 4,
            timeout: Duration::from_secs(1),
        },
        model_queues: HashMap::new(),
        model_slots: HashMap::from([("m".to_string(), 2)]),
    });
    scheduler.sync_upstream(0, &[llm("m", Some(8))]);
    let _a = granted(scheduler.acquire(&model("m")));
    let _b = granted(scheduler.acquire(&model("m")));
    assert!(matches!(scheduler.acquire(&model("m")), Acquire::Queued(_)));
}

#[test]
fn resolve_prefers_model_then_instance() {
    let scheduler = scheduler();
    scheduler.sync_upstream(0, &[llm("m", None), llm("m:2", None)]);
    assert_eq!(scheduler.resolve("m", None), Resolution::Found(model("m")));
    assert_eq!(
        scheduler.resolve("m:2", None),
        Resolution::Found(Target::Instance(Arc::from("m:2")))
    );
    assert_eq!(
        scheduler.resolve("other", None),
        Resolution::Unknown {
            loaded: vec!["m".to_string()]
        }
    );
    assert_eq!(
        scheduler.resolve("other", Some(KindClass::Generative)),
        Resolution::Found(Target::AnyOf(KindClass::Generative))
    );
    assert!(matches!(
        scheduler.resolve("other", Some(KindClass::Embedding)),
        Resolution::Unknown { .. }
    ));
}

#[test]
fn released_slot_on_removed_instance_is_safe() {
    let scheduler = scheduler();
    scheduler.sync_upstream(0, &[llm("m", None), llm("m:2", None)]);
    let guards: Vec<_> = (0..2)
        .map(|_| granted(scheduler.acquire(&model("m"))))
        .collect();
    scheduler.sync_upstream(0, &[]);
    drop(guards);
    let snapshot = scheduler.snapshot();
    assert!(snapshot.instances.iter().all(|i| i.in_flight == 0));
}

#[derive(Clone, Debug)]
enum Op {
    Acquire { pinned: Option<u8> },
    DropGuard(usize),
    DropTicket(usize),
    Resync(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => proptest::option::of(0u8..3).prop_map(|pinned| Op::Acquire { pinned }),
        3 => any::<usize>().prop_map(Op::DropGuard),
        1 => any::<usize>().prop_map(Op::DropTicket),
        1 => (0u8..8).prop_map(Op::Resync),
    ]
}

fn specs_for(mask: u8) -> Vec<InstanceSpec> {
    let names = ["m", "m:2", "m:3"];
    let mut specs: Vec<_> = (0..3)
        .filter(|bit| mask & (1 << bit) != 0)
        .map(|bit| llm(names[bit], Some(1 + bit as u32)))
        .collect();
    if specs.is_empty() {
        specs.push(llm("m", Some(1)));
    }
    specs
}

fn matches_target(target: &Target, id: &str) -> bool {
    match target {
        Target::Model(_) => true,
        Target::Instance(pinned) => **pinned == *id,
        Target::AnyOf(_) => true,
    }
}

proptest! {
    /// Whatever the order of grants, releases, cancellations and catalog changes: no instance runs
    /// more than its slots, in-flight counts equal the live guards, and no waiter that a free slot
    /// could serve is left waiting.
    #[test]
    fn counters_never_drift(ops in proptest::collection::vec(op(), 1..120)) {
        let scheduler = scheduler();
        scheduler.sync_upstream(0, &specs_for(7));
        let mut guards: Vec<SlotGuard> = Vec::new();
        let mut tickets: Vec<(Ticket, Target)> = Vec::new();

        for op in ops {
            match op {
                Op::Acquire { pinned } => {
                    let target = match pinned {
                        Some(n) => Target::Instance(Arc::from(["m", "m:2", "m:3"][n as usize])),
                        None => model("m"),
                    };
                    match scheduler.acquire(&target) {
                        Acquire::Granted(guard) => guards.push(guard),
                        Acquire::Queued(ticket) => tickets.push((ticket, target)),
                        Acquire::QueueFull { .. } | Acquire::Unavailable => {}
                    }
                }
                Op::DropGuard(i) if !guards.is_empty() => { guards.remove(i % guards.len()); }
                Op::DropTicket(i) if !tickets.is_empty() => { tickets.remove(i % tickets.len()); }
                Op::Resync(mask) => { scheduler.sync_upstream(0, &specs_for(mask)); }
                _ => {}
            }

            // Collect slots handed to waiting tickets, so every claimed slot has a guard here.
            tickets.retain_mut(|(ticket, _)| match ticket.receiver.try_recv() {
                Ok(guard) => { guards.push(guard); false }
                Err(_) => true,
            });

            let snapshot = scheduler.snapshot();
            for instance in &snapshot.instances {
                let held = guards.iter().filter(|g| **g.instance() == *instance.id).count() as u32;
                prop_assert_eq!(instance.in_flight, held, "in flight on {}", instance.id);
                // Each name keeps its slot count across resyncs, so the limit always holds.
                prop_assert!(instance.in_flight <= instance.slots, "{} over its slots", instance.id);
            }
            prop_assert_eq!(snapshot.total_queued, tickets.len());
            for (_, target) in &tickets {
                let servable = snapshot.instances.iter().any(|i| {
                    i.in_rotation && i.in_flight < i.slots && matches_target(target, &i.id)
                });
                prop_assert!(!servable, "a waiter for {:?} waits beside a free slot", target);
            }
        }
        drop(tickets);
        drop(guards);
        let snapshot = scheduler.snapshot();
        prop_assert!(snapshot.instances.iter().all(|i| i.in_flight == 0));
        prop_assert_eq!(snapshot.total_queued, 0);
    }
}
