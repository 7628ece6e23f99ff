import AMQP
import JSMContracts
import JSMDomain
import JSMLedger
import JSMServices
import Logging
import Metrics
import SwiftProtobuf

/// What the replies of one migration add up to, each batch counted once.
public struct ReplyTally: Sendable, Hashable {
    /// Batches whose reply was counted.
    public internal(set) var batches: Set<String> = []
    /// Replies for a batch already counted (redeliveries, replays): ignored.
    public internal(set) var duplicates = 0
    /// Outcomes of customers.
    public internal(set) var customers = JSMOutcomeTotals()
    /// Outcomes of licensed users.
    public internal(set) var licensedUsers = JSMOutcomeTotals()
    /// Outcomes of formers.
    public internal(set) var formers = JSMOutcomeTotals()
    /// Outcomes of groups.
    public internal(set) var groups = JSMGroupTotals()
    /// Outcomes of memberships.
    public internal(set) var memberships = JSMMembershipTotals()

    /// Counts `result` unless its batch was counted before; returns whether it was new.
    @discardableResult
    mutating func add(_ result: JSMBatchResult) -> Bool {
        guard firstReply(of: result.header) else { return false }
        customers.add(result.customers)
        licensedUsers.add(result.licensedUsers)
        formers.add(result.formers)
        return true
    }

    /// Identities the ledger's cut settled `already_migrated` without a batch (no reply carries
    /// them); counted once, when `settledCounted` is still false.
    public internal(set) var settledAtCut = 0
    /// Whether ``settledAtCut`` has been added.
    var settledCounted = false

    /// Adds the identities the cut settled, once.
    mutating func addSettledAtCut(_ counts: [ScopeCategory: Int]) {
        guard !settledCounted else { return }
        settledCounted = true
        for (category, count) in counts {
            settledAtCut += count
            switch category {
            case .customer: customers.alreadyMigrated += UInt64(count)
            case .licensedUser: licensedUsers.alreadyMigrated += UInt64(count)
            case .former: formers.alreadyMigrated += UInt64(count)
            }
        }
    }

    /// Counts a group batch's reply unless its batch was counted before.
    @discardableResult
    mutating func add(_ result: JSMGroupBatchResult) -> Bool {
        guard firstReply(of: result.header) else { return false }
        groups.created += result.totals.created
        groups.reused += result.totals.reused
        groups.alreadyMigrated += result.totals.alreadyMigrated
        groups.rejected += result.totals.rejected
        groups.permissionEscalationRisks += result.totals.permissionEscalationRisks
        return true
    }

    /// Counts a membership batch's reply unless its batch was counted before.
    @discardableResult
    mutating func add(_ result: JSMMembershipBatchResult) -> Bool {
        guard firstReply(of: result.header) else { return false }
        memberships.added += result.totals.added
        memberships.alreadyMember += result.totals.alreadyMember
        memberships.alreadyMigrated += result.totals.alreadyMigrated
        memberships.skipped += result.totals.skipped
        memberships.rejected += result.totals.rejected
        return true
    }

    /// Whether this is the first reply of its batch; a later one is counted as a duplicate.
    private mutating func firstReply(of header: JSMMessageHeader) -> Bool {
        guard batches.insert(header.batchID).inserted else {
            duplicates += 1
            return false
        }
        return true
    }

    /// Counts a stored result of a batch of `method`.
    mutating func add(stored: [UInt8], method: String) throws {
        switch method {
        case LedgerBatch.groupMethod: add(try JSMGroupBatchResult(serializedBytes: stored))
        case LedgerBatch.membershipMethod: add(try JSMMembershipBatchResult(serializedBytes: stored))
        default: add(try JSMBatchResult(serializedBytes: stored))
        }
    }

    /// Whether the group and membership replies agree with the ledger's totals.
    func matches(_ totals: GroupPhaseTotals) -> Bool {
        Int(groups.created) == totals.groups.created && Int(groups.reused) == totals.groups.reused
            && Int(groups.alreadyMigrated) == totals.groups.alreadyMigrated
            && Int(groups.rejected) == totals.groups.rejected
            && Int(memberships.added) == totals.memberships.added
            && Int(memberships.alreadyMember) == totals.memberships.alreadyMember
            && Int(memberships.alreadyMigrated) == totals.memberships.alreadyMigrated
            && Int(memberships.skipped) == totals.memberships.skipped
            && Int(memberships.rejected) == totals.memberships.rejected
    }

    /// The totals of one category.
    public func totals(_ category: ScopeCategory) -> JSMOutcomeTotals {
        switch category {
        case .customer: customers
        case .licensedUser: licensedUsers
        case .former: formers
        }
    }
}

/// How a migration ended, as the aggregator decided it.
public struct AggregatorVerdict: Sendable, Hashable {
    /// The migration.
    public let migrationId: String
    /// `complete` or `incomplete`.
    public internal(set) var state: MigrationState
    /// The ledger's totals at the end.
    public let totals: LedgerTotals
    /// The ledger's group and membership totals at the end (zero without `--groups`).
    public let groupTotals: GroupPhaseTotals
    /// The replies' totals, each batch once.
    public let tally: ReplyTally
    /// Whether the replies agree with the ledger, category by category, groups and memberships too.
    public let repliesMatchLedger: Bool
    /// What keeps the invariant from holding (empty when it holds).
    public let missing: MissingWork
    /// Batches per state at the end.
    public let batchStates: [BatchState: Int]

    /// The reconciliation invariant, the replies' agreement and no batch left behind.
    public var reconciled: Bool {
        totals.invariantHolds && groupTotals.invariantHolds && repliesMatchLedger && missing.isEmpty
    }

    /// Identities, groups or memberships the site refused or the rules rejected: the migration
    /// then ends `incomplete` (finished with errors) even when everything is accounted for.
    public var rejections: Int {
        totals.overall.rejected + groupTotals.groups.rejected + groupTotals.memberships.rejected
    }
}

/// The aggregator: counts replies once per batch, moves a migration from expansion to its batches
/// (exactly once, through the ledger), publishes them, and finishes a migration as complete or
/// incomplete once every batch has ended, checking the reconciliation invariant. It keeps nothing
/// it cannot rebuild from the ledger, so it can be killed and restarted at any time.
public actor MigrationAggregator {
    let ledger: Ledger
    let logger: Logger
    private var tallies: [String: ReplyTally] = [:]
    private var seeded: Set<String> = []
    /// Batches of every method per migration (fixed once the scope is cut).
    private var batchCounts: [String: Int] = [:]
    /// The migrations' records (their options never change).
    private var records: [String: MigrationRecord] = [:]
    /// Migrations whose membership batches this aggregator has published (no further gate checks
    /// per reply; the periodic check still publishes anything left unpublished).
    private var membershipsReleased: Set<String> = []
    private var verdicts: [String: AggregatorVerdict] = [:]
    /// Migrations being published right now: the actor is reentrant at every await, and a second
    /// pass at the same time would send the same batches twice.
    private var publishing: Set<String> = []
    /// Migrations whose verdict is being recounted right now. The reply path and the periodic
    /// check both reach a migration's end, and the recount reads every scope row (2.4 s at a
    /// million identities, longer than the check's interval): a second recount at the same time
    /// only delayed the first's ledger reads and the end of the run.
    private var finishing: Set<String> = []
    /// How many times each migration's verdict was recounted from the ledger (for tests).
    private(set) var recounts: [String: Int] = [:]
    /// The totals of each migration's rows outside the batches, read once after its cut (they
    /// never change then) while the workers settle the batches: the verdict adds them to the
    /// replies' tally, and its recount reads only the batched rows. A task, so that every path
    /// shares one read.
    private var outsideBatches: [String: Task<SettledOutsideBatches, any Error>] = [:]
    /// When the ledger first showed every batch ended while some replies were still on their way.
    private var awaitingReplies: [String: ContinuousClock.Instant] = [:]
    /// How long replies may lag behind the ledger before the stored results stand in for them
    /// (a reply consumed by another aggregator never arrives here).
    let replyGrace: Duration = .seconds(5)
    private let onProgress: @Sendable (String, Int, Int) -> Void

    /// An aggregator over a ledger; `onProgress(migration, batches counted, batches in all)`.
    public init(
        ledger: Ledger, logger: Logger = Logger(label: "jsm.aggregator"),
        onProgress: @escaping @Sendable (String, Int, Int) -> Void = { _, _, _ in }
    ) {
        self.ledger = ledger
        self.logger = logger
        self.onProgress = onProgress
    }

    /// The verdict of a migration this aggregator finished.
    public func verdict(_ migrationId: String) -> AggregatorVerdict? { verdicts[migrationId] }

    /// The replies counted so far for a migration.
    public func tally(_ migrationId: String) -> ReplyTally { tallies[migrationId] ?? ReplyTally() }

    /// Consumes the results queue; returns when `migrationId` (if given) has finished, else runs
    /// until cancelled. Every `checkInterval` it also looks at the ledger, so a lost reply, a
    /// parked batch or a crash between the phase change and the publishing cannot stall a migration.
    public func run(
        connection: AMQPConnection, until migrationId: String? = nil, checkInterval: Duration = .seconds(2)
    ) async throws -> AggregatorVerdict? {
        let consumer = try await connection.consume(queue: MigrationTopology.resultsQueue, prefetch: 64)
        let publisher = BatchPublisher(ledger: ledger, connection: connection, logger: logger)
        try await check(publisher: publisher)
        if let migrationId, let verdict = try await finishedVerdict(migrationId) { return verdict }
        return try await ConsumerDrain.run([consumer]) { drain in
            try await collect(consumer, drain: drain, publisher: publisher, until: migrationId, every: checkInterval)
        }
    }

    /// Counts replies and checks the ledger every `interval` until the migration finishes, the
    /// consumer ends (graceful shutdown: replies taken and not started go back to the queue), or
    /// the task is cancelled.
    private func collect(
        _ consumer: AMQPConsumer, drain: ConsumerDrain, publisher: BatchPublisher, until migrationId: String?,
        every checkInterval: Duration
    ) async throws -> AggregatorVerdict? {
        try await withThrowingTaskGroup(of: AggregatorVerdict?.self) { group in
            group.addTask {
                for try await delivery in consumer {
                    guard !drain.isStopping else {
                        delivery.reject(requeue: true)
                        continue
                    }
                    if let finished = try await self.handle(delivery, publisher: publisher, until: migrationId) {
                        return finished
                    }
                }
                return nil
            }
            group.addTask {
                // Bounded by cancellation: the loop ends when the run ends.
                while !Task.isCancelled {
                    try await Task.sleep(for: checkInterval)
                    do {
                        try await self.check(publisher: publisher)
                    } catch let error as LedgerError where error.isRetriable {
                        self.logRetriable(error, then: "next check later")
                    }
                    if let migrationId, let verdict = try await self.finishedVerdict(migrationId) { return verdict }
                }
                return nil
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    /// Logs a retriable ledger failure and what happens next (see ``retriableLogLine(_:then:)``).
    nonisolated private func logRetriable(_ error: LedgerError, then next: String) {
        let (level, message) = Self.retriableLogLine(error, then: next)
        logger.log(level: level, "\(message)", metadata: ["error": "\(LogRedaction.text("\(error)"))"])
    }

    /// The level and message of a retriable ledger failure. A conflict is expected while another
    /// process writes (the producer cutting a million identities holds SQLite's write lock for
    /// longer than the busy timeout, and the periodic check tries the same idempotent cut), so it
    /// is `info` and says the ledger is busy; an unreachable ledger is a warning.
    static func retriableLogLine(_ error: LedgerError, then next: String) -> (Logger.Level, String) {
        error.code == .transactionConflict
            ? (.info, "ledger busy: another transaction holds it; \(next)")
            : (.warning, "ledger unavailable; \(next)")
    }

    /// The verdict once `migrationId` has left `running` (this or another aggregator finished it).
    private func finishedVerdict(_ migrationId: String) async throws -> AggregatorVerdict? {
        if let verdict = verdicts[migrationId] { return verdict }
        // The pass finishing it records the verdict; asking the ledger now would recount it too.
        guard !finishing.contains(migrationId) else { return nil }
        guard let migration = try await ledger.migration(migrationId),
            migration.state == .complete || migration.state == .incomplete
        else { return nil }
        return try await makeVerdict(migration, state: migration.state)
    }

    private func handle(_ delivery: AMQPDelivery, publisher: BatchPublisher, until: String?) async throws
        -> AggregatorVerdict?
    {
        let type = delivery.properties.type ?? ""
        do {
            switch RPCMethod(replyTypeProperty: type) {
            case .expandProject:
                let result = try JSMProjectResult(serializedBytes: delivery.body)
                try await advanceIfReady(result.header.migrationID, publisher: publisher)
            case .migrateIdentities:
                let result = try JSMBatchResult(serializedBytes: delivery.body)
                try await counted(result.header.migrationID, method: .migrateIdentities, publisher: publisher) {
                    $0.add(result)
                }
            case .migrateGroups:
                let result = try JSMGroupBatchResult(serializedBytes: delivery.body)
                try await counted(result.header.migrationID, method: .migrateGroups, publisher: publisher) {
                    $0.add(result)
                }
            case .migrateMemberships:
                let result = try JSMMembershipBatchResult(serializedBytes: delivery.body)
                try await counted(result.header.migrationID, method: .migrateMemberships, publisher: publisher) {
                    $0.add(result)
                }
            case nil:
                let unusable = RPCEnvelope.Unusable(reason: .unknownMethod, detail: "reply type '\(type)'")
                try await delivery.park(because: unusable, on: publisher.connection)
                return nil
            }
        } catch let error as BinaryDecodingError {
            let unusable = RPCEnvelope.Unusable(reason: .undecodable, detail: "\(type): \(error)")
            try await delivery.park(because: unusable, on: publisher.connection)
            return nil
        } catch let error as LedgerError where error.isRetriable {
            // The ledger is briefly unavailable or busy: the reply goes back and is counted later.
            logRetriable(error, then: "reply requeued")
            delivery.nack(requeue: true)
            try await Task.sleep(for: .seconds(1))
            return nil
        }
        delivery.ack()
        if let until, let verdict = verdicts[until] { return verdict }
        return nil
    }

    /// Counts one batch reply, reports progress, publishes the membership batches once the
    /// identities and groups have ended, and finishes the migration after its last batch.
    private func counted(
        _ migrationId: String, method: RPCMethod, publisher: BatchPublisher, add: (inout ReplyTally) -> Bool
    ) async throws {
        try await seedIfNeeded(migrationId)
        // Not while this aggregator publishes the migration's batches: one SQLite connection runs
        // one transaction at a time, and the read (seconds at a million identities) would hold
        // back the workers' batches.
        if !publishing.contains(migrationId), try await record(migrationId)?.phase == .migrate {
            startReadingOutsideBatches(migrationId)
        }
        guard add(&tallies[migrationId, default: ReplyTally()]) else {
            Counter(
                label: PipelineMetrics.replies, dimensions: [("method", method.rawValue), ("outcome", "duplicate")]
            )
            .increment()
            // The first reply after the cut counts the batches done so far from their stored
            // results, and those replies are duplicates then: when that count took in the last
            // batch, the end is reached here, not at the next periodic check (seconds later).
            if verdicts[migrationId] == nil,
                tallies[migrationId]?.batches.count ?? 0 == (try await batchCount(migrationId)),
                let current = try await ledger.migration(migrationId)
            {
                try await finishIfEnded(current)
            }
            return
        }
        Counter(label: PipelineMetrics.replies, dimensions: [("method", method.rawValue), ("outcome", "counted")])
            .increment()
        let counted = tallies[migrationId]?.batches.count ?? 0
        let total = try await batchCount(migrationId)
        onProgress(migrationId, counted, total)
        guard let migration = try await record(migrationId) else { return }
        if method != .migrateMemberships, migration.groupMembership, !membershipsReleased.contains(migrationId),
            publishing.insert(migrationId).inserted
        {
            // Only the membership gate: identity and group batches went out at the cut.
            defer { publishing.remove(migrationId) }
            if try await publisher.publishMembershipsIfReady(of: migration) > 0 {
                membershipsReleased.insert(migrationId)
            }
        }
        if counted == total, let current = try await ledger.migration(migrationId) {
            try await finishIfEnded(current)
        }
    }

    /// A migration's record, read from the ledger once (its options never change).
    private func record(_ migrationId: String) async throws -> MigrationRecord? {
        if let known = records[migrationId] { return known }
        let migration = try await ledger.migration(migrationId)
        if let migration, migration.phase == .migrate { records[migrationId] = migration }
        return migration
    }

    /// Every running migration: advance it when its projects are expanded, publish what is not
    /// published, finish it when every batch has ended.
    private func check(publisher: BatchPublisher) async throws {
        for id in try await ledger.migrationIds(inStates: [.running]) {
            guard let migration = try await ledger.migration(id) else { continue }
            if migration.phase == .expand {
                try await advanceIfReady(id, publisher: publisher)
                continue
            }
            // The read first: whoever cut the scope publishes its batches (this publishing only
            // catches what a crash left behind), and the read then runs while the workers settle
            // them. Not while this aggregator publishes them (its reply path cut the scope).
            if !publishing.contains(id) { startReadingOutsideBatches(id) }
            try await publish(migration, publisher)
            try await seedIfNeeded(id)
            try await finishIfEnded(migration)
        }
    }

    private func advanceIfReady(_ migrationId: String, publisher: BatchPublisher) async throws {
        let advance = try await ledger.advanceToMigratePhase(migrationId: migrationId)
        // Another process cut the scope and publishes its batches: the read need not wait for ours.
        if case .alreadyAdvanced = advance { startReadingOutsideBatches(migrationId) }
        switch advance {
        case .advanced(let cut):
            logger.notice(
                "every project expanded: scope cut into batches",
                metadata: [
                    "migration": "\(migrationId)", "batches": "\(cut.batchCount)", "identities": "\(cut.identityCount)",
                    "settled_at_cut": "\(cut.settledAtCut)",
                ])
            fallthrough
        case .alreadyAdvanced:
            if let migration = try await ledger.migration(migrationId) {
                try await publish(migration, publisher)
                // When this call cut the scope, the read starts once its batches are out; when
                // another process did, it is under way already (above) and this changes nothing.
                startReadingOutsideBatches(migrationId)
                onProgress(migrationId, tallies[migrationId]?.batches.count ?? 0, try await batchCount(migrationId))
            }
        case .projectsPending:
            break
        }
    }

    /// A migration's number of batches of every method, read from the ledger once (it never
    /// changes after the cut), not once per reply.
    private func batchCount(_ migrationId: String) async throws -> Int {
        if let known = batchCounts[migrationId] { return known }
        guard try await ledger.migration(migrationId)?.phase == .migrate else { return 0 }
        let count = try await ledger.batchStateCounts(migrationId: migrationId, method: nil).values.reduce(0, +)
        batchCounts[migrationId] = count
        return count
    }

    private func publish(_ migration: MigrationRecord, _ publisher: BatchPublisher) async throws {
        guard publishing.insert(migration.id).inserted else { return }
        defer { publishing.remove(migration.id) }
        try await publisher.publishPending(of: migration)
    }

    /// After a restart, counts the batches the ledger completed before, from their stored results.
    private func seedIfNeeded(_ migrationId: String, force: Bool = false) async throws {
        guard seeded.insert(migrationId).inserted || force else { return }
        for method in LedgerBatch.allMethods {
            try await seed(migrationId, method: method, state: .done)
            try await seed(migrationId, method: method, state: .discarded)
        }
    }

    /// Starts reading the rows a migration's cut left outside the batches, unless a read is done
    /// or under way; returns that read. Only once the migration is past its cut.
    @discardableResult
    private func startReadingOutsideBatches(_ migrationId: String) -> Task<SettledOutsideBatches, any Error> {
        if let known = outsideBatches[migrationId] { return known }
        let ledger = self.ledger
        let read = Task { try await ledger.settledOutsideBatches(migrationId: migrationId) }
        outsideBatches[migrationId] = read
        return read
    }

    /// The migration's rows outside the batches (``Ledger/settledOutsideBatches(migrationId:)``),
    /// read once per migration; after a failed read the next call reads again.
    private func settledOutsideBatches(_ migrationId: String) async throws -> SettledOutsideBatches {
        let read = startReadingOutsideBatches(migrationId)
        do {
            return try await read.value
        } catch {
            if outsideBatches[migrationId] == read { outsideBatches[migrationId] = nil }
            throw error
        }
    }

    /// Counts the stored results of one method's batches in one state that no reply counted yet.
    private func seed(_ migrationId: String, method: String, state: BatchState) async throws {
        var after: Int64 = -1
        // Bounded: each page moves `after` forward or ends the loop.
        for _ in 0..<1_000_000 {
            let page = try await ledger.batches(
                migrationId: migrationId, state: state, method: method, afterSequence: after, limit: 500)
            guard let last = page.last else { break }
            after = last.sequence
            for batch in page where !(tallies[migrationId]?.batches.contains(batch.batchId) ?? false) {
                if let stored = try await ledger.completedResult(migrationId: migrationId, batchId: batch.batchId) {
                    try tallies[migrationId, default: ReplyTally()].add(stored: stored, method: method)
                }
            }
        }
    }

    /// Finishes the migration once no batch is pending: complete when everything reconciles with
    /// nothing rejected, incomplete (finished with errors) otherwise, naming what is missing.
    private func finishIfEnded(_ migration: MigrationRecord) async throws {
        guard migration.state == .running, migration.phase == .migrate, finishing.insert(migration.id).inserted
        else { return }
        defer { finishing.remove(migration.id) }
        // The record may be older than the last pass's end: the periodic check reads it, then
        // publishes and seeds while a reply finishes the migration (here or in another aggregator).
        guard verdicts[migration.id] == nil, try await ledger.migration(migration.id)?.state == .running else {
            return
        }
        let states = try await ledger.batchStateCounts(migrationId: migration.id, method: nil)
        guard states[.pending, default: 0] == 0 else { return }
        // The ledger commits before the reply is sent: wait a little for the last replies.
        if tallies[migration.id]?.batches.count ?? 0 < states[.done, default: 0] + states[.discarded, default: 0] {
            let since = awaitingReplies[migration.id] ?? .now
            awaitingReplies[migration.id] = since
            guard since.duration(to: .now) >= replyGrace else { return }
            logger.warning(
                "replies missing after the grace period; counting the ledger's stored results",
                metadata: ["migration": "\(migration.id)"])
            try await seedIfNeeded(migration.id, force: true)
        }
        let provisional = try await makeVerdict(migration, state: .complete)
        let state: MigrationState = provisional.reconciled && provisional.rejections == 0 ? .complete : .incomplete
        guard try await ledger.setMigrationState(migration.id, to: state, from: [.running]) else { return }
        Counter(label: PipelineMetrics.migrationsFinished, dimensions: [("state", state.rawValue)]).increment()
        // Only the state changed since the provisional verdict: no batch is pending, so no reply
        // or ledger write can change the totals (recounting a million identities takes seconds).
        var verdict = provisional
        verdict.state = state
        verdicts[migration.id] = verdict
        if verdict.reconciled {
            logger.notice(
                "migration finished and reconciled", metadata: ["migration": "\(migration.id)", "state": "\(state)"])
        } else {
            let batches = verdict.missing.batches.prefix(10).map { "\($0.batchId) (\($0.state.rawValue))" }
            let identities = verdict.missing.undecided.prefix(10).map(\.userKey)
            logger.error(
                "migration finished without reconciling",
                metadata: [
                    "migration": "\(migration.id)", "missing_batches": "\(batches)",
                    "undecided_user_keys": "\(identities)", "unmapped": "\(verdict.missing.unmapped.prefix(10))",
                    "replies_match_ledger": "\(verdict.repliesMatchLedger)",
                ])
        }
    }

    private func makeVerdict(_ migration: MigrationRecord, state: MigrationState) async throws -> AggregatorVerdict {
        recounts[migration.id, default: 0] += 1
        try await seedIfNeeded(migration.id)
        // The rows outside the batches were counted once after the cut; only the batched ones are
        // read again (a re-run of 1M identities: 2.9 s to recount them all). No reply carries the
        // rows outside the batches: the tally takes them from the same count, once.
        let outside = try await settledOutsideBatches(migration.id)
        tallies[migration.id, default: ReplyTally()].addSettledAtCut(outside.decidedByCategory)
        let totals = try await ledger.totals(migrationId: migration.id, outsideBatches: outside)
        let groupTotals = try await ledger.groupTotals(migrationId: migration.id)
        let tally = tallies[migration.id] ?? ReplyTally()
        let matches = ScopeCategory.allCases.allSatisfy { category in
            let ledger = totals.byCategory[category] ?? OutcomeTally()
            let replies = tally.totals(category)
            return Int(replies.created) == ledger.created && Int(replies.linked) == ledger.linked
                && Int(replies.former) == ledger.former && Int(replies.rejected) == ledger.rejected
                && Int(replies.alreadyMigrated) == ledger.alreadyMigrated
        }
        return AggregatorVerdict(
            migrationId: migration.id, state: state, totals: totals, groupTotals: groupTotals, tally: tally,
            repliesMatchLedger: matches && tally.matches(groupTotals),
            missing: try await ledger.missingWork(migrationId: migration.id, totals: totals),
            batchStates: try await ledger.batchStateCounts(migrationId: migration.id, method: nil))
    }
}

extension AMQPDelivery {
    /// Publishes this delivery to `jsm.parked` with the reason, then acks it.
    func park(because unusable: RPCEnvelope.Unusable, on connection: AMQPConnection) async throws {
        try await connection.publish(RPCEnvelope.parked(self, because: unusable))
        ack()
    }
}
