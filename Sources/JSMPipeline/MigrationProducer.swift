import AMQP
import JSMCloud
import JSMContracts
import JSMDomain
import JSMLedger
import JSMServices
import JSMSource
import Logging

/// What an operator asks `jsm-migrate start` for.
public struct StartRequest: Sendable, Hashable {
    /// The migration's id; the same id with the same options resumes it.
    public var migrationId: String
    /// Keys of the selected projects (none: migrating in advance).
    public var projectKeys: [String]
    /// `--customers`, `--include-requestless`, `--users`.
    public var scope: ScopeOptions
    /// `--invalid-email`, `--duplicate-email`.
    public var policies: MigrationPolicies
    /// `--groups`.
    public var groups: Bool
    /// `--group-membership`.
    public var groupMembership: Bool
    /// Identities per batch.
    public var batchSize: Int
    /// The ledger's name for the target site.
    public var siteId: String
    /// Operator or host, for the audit trail.
    public var createdBy: String

    /// Creates a request with the documented defaults.
    public init(
        migrationId: String, projectKeys: [String], scope: ScopeOptions = ScopeOptions(),
        policies: MigrationPolicies = MigrationPolicies(), groups: Bool = false, groupMembership: Bool = false,
        batchSize: Int = 500, siteId: String, createdBy: String
    ) {
        self.migrationId = migrationId
        self.projectKeys = projectKeys
        self.scope = scope
        self.policies = policies
        self.groups = groups
        self.groupMembership = groupMembership
        self.batchSize = batchSize
        self.siteId = siteId
        self.createdBy = createdBy
    }
}

/// What `start` did.
public struct StartOutcome: Sendable, Hashable {
    /// The migration as the ledger now holds it.
    public let migration: MigrationRecord
    /// Whether an existing migration was resumed.
    public let resumed: Bool
    /// Identities the `all` options added to the scope in this call.
    public let claimedByProducer: ScopeCounts
    /// `ExpandProject` messages published.
    public let projectMessages: Int
    /// `MigrateIdentities` messages published.
    public let batchesPublished: Int
    /// Source rows reported as anomalies while classifying (logged with their user keys).
    public let anomalies: Int
}

/// The producer: validates a migration against the source, records it in the ledger, claims what
/// the `all` options take, and publishes project expansions (or, with no projects, the batches).
public struct MigrationProducer: Sendable {
    let ledger: Ledger
    let source: JiraSource
    let logger: Logger

    /// A producer over a ledger and a source.
    public init(ledger: Ledger, source: JiraSource, logger: Logger = Logger(label: "jsm.producer")) {
        self.ledger = ledger
        self.source = source
        self.logger = logger
    }

    /// Resolves project keys against the source and validates the options; throws before anything
    /// is recorded or published.
    public func definition(for request: StartRequest) async throws -> MigrationDefinition {
        guard !request.migrationId.isEmpty,
            request.migrationId.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }),
            request.migrationId.count <= 100
        else {
            throw PipelineError(
                .invalidOptions,
                "--migration '\(request.migrationId)' must be 1-100 letters, digits, '-', '_' or '.'")
        }
        guard (1...10_000).contains(request.batchSize) else {
            throw PipelineError(.invalidOptions, "--batch-size must be 1...10000, not \(request.batchSize)")
        }
        if request.groupMembership, !request.groups {
            throw PipelineError(.invalidOptions, "--group-membership needs --groups: memberships need their groups")
        }
        let known = try await source.projects()
        let byKey = Dictionary(known.map { ($0.key.uppercased(), $0) }, uniquingKeysWith: { first, _ in first })
        var selected: [SelectedProject] = []
        var unknown: [String] = []
        for key in request.projectKeys {
            guard let project = byKey[key.uppercased()] else {
                unknown.append(key)
                continue
            }
            if !selected.contains(project) { selected.append(project) }
        }
        guard unknown.isEmpty else {
            let sample = known.prefix(10).map(\.key).joined(separator: ", ")
            throw PipelineError(
                .invalidOptions,
                "unknown project key\(unknown.count == 1 ? "" : "s") \(unknown.joined(separator: ", ")): "
                    + "the source has \(known.count) projects (\(sample)\(known.count > 10 ? ", ..." : ""))")
        }
        do {
            try ScopeSelection.validate(options: request.scope, projects: selected)
        } catch {
            throw PipelineError(.invalidOptions, error.message)
        }
        if request.scope.users == .none, request.scope.customers == .none, selected.isEmpty {
            throw PipelineError(
                .invalidOptions, "nothing to migrate: no project, --users none and --customers none")
        }
        return MigrationDefinition(
            id: request.migrationId, siteId: request.siteId, projects: selected, scope: request.scope,
            policies: request.policies, groups: request.groups, groupMembership: request.groupMembership,
            batchSize: request.batchSize, createdBy: request.createdBy)
    }

    /// Declares the broker topology, records (or resumes) the migration, claims the `all` scope,
    /// and publishes its messages with confirms. Nothing is published when validation fails.
    public func start(_ request: StartRequest, connection: AMQPConnection) async throws -> StartOutcome {
        let definition = try await definition(for: request)
        // Idempotent: the queues must exist before the first confirmed publish.
        try await connection.declare(MigrationBrokerTopology().declarations)
        let started = try await ledger.createOrResumeMigration(definition)
        var migration = started.migration
        logger.notice(
            started.resumed ? "resuming migration" : "migration recorded",
            metadata: ["migration": "\(migration.id)", "projects": "\(migration.projectCount)"])
        var claimed = ScopeCounts()
        var anomalies = 0
        if migration.phase == .expand {
            (claimed, anomalies) = try await readSource(
                migration: migration, scope: definition.scope, groups: definition.groups)
        }
        try await ledger.setMigrationState(migration.id, to: .running, from: [.saved])
        var projectMessages = 0
        if migration.phase == .expand, !definition.projects.isEmpty {
            let pending = Set(try await ledger.pendingProjects(migrationId: migration.id))
            let options = JSMMigrationOptions(try await requireMigration(migration.id))
            let messages = try definition.projects.filter { pending.contains($0.id) }.map { project in
                var scope = JSMProjectScope()
                scope.header = JSMMessageHeader(migrationID: migration.id, batchID: "project-\(project.id)")
                scope.projectID = project.id
                scope.projectKey = project.key
                scope.projectName = project.name
                scope.serviceProject = project.isServiceProject
                scope.options = options
                return try RPCEnvelope.request(.expandProject, header: scope.header, body: scope)
            }
            if !messages.isEmpty { try await connection.publish(messages) }
            projectMessages = messages.count
        } else if migration.phase == .expand {
            // No projects: the producer's claims are the whole scope, so it cuts the batches itself.
            _ = try await ledger.advanceToMigratePhase(migrationId: migration.id)
        }
        migration = try await requireMigration(migration.id)
        var batches = 0
        if migration.phase == .migrate {
            batches = try await BatchPublisher(ledger: ledger, connection: connection, logger: logger)
                .publishPending(of: migration)
        }
        return StartOutcome(
            migration: try await requireMigration(migration.id), resumed: started.resumed, claimedByProducer: claimed,
            projectMessages: projectMessages, batchesPublished: batches, anomalies: anomalies)
    }

    private func requireMigration(_ id: String) async throws -> MigrationRecord {
        guard let migration = try await ledger.migration(id) else {
            throw PipelineError(.invalidState, "migration \(id) vanished from the ledger")
        }
        return migration
    }

    /// Identities (or group memberships) the producer claims in one ledger transaction. Each
    /// commit writes every page it dirtied; identities arrive in user-name order, so their keys
    /// spread over the whole scope and a chunk of 5,000 dirtied nearly one page per row. With
    /// 50,000 a 1M re-run's claims wrote a third less (16.8 → 12.6 s of ledger time in sqlite3
    /// on the same rows). A chunk of identities is ~20 MB in the producer.
    static let claimsPerTransaction = 50_000

    /// Chunks of claims handed to the ledger and not yet committed, at most.
    static let claimWritesInFlight = 2

    /// One pass over the source's identities, in chunks: claims what `--customers all` and
    /// `--users all` take, and with `--groups` records every user's groups (with the groups they
    /// nest in) as candidates; the cut keeps those of in-scope identities.
    private func readSource(migration: MigrationRecord, scope: ScopeOptions, groups: Bool) async throws
        -> (ScopeCounts, Int)
    {
        let claimsAll = scope.customers == .all || scope.users == .all
        guard claimsAll || groups else { return (ScopeCounts(), 0) }
        let selection = try ScopeSelection(options: scope, projects: [])
        var reporters = Set<String>()
        if selection.needsRequestReporters {
            for try await key in source.requestReporters() { reporters.insert(key) }
        }
        let classifier = try await source.loadClassifier()
        var chunk: [ServerIdentity] = []
        var newGroups: [GroupCandidate] = []
        var knownGroups = Set<String>()
        var memberships: [MembershipCandidate] = []
        var claimed = ScopeCounts()
        var anomalies = 0
        let ledger = self.ledger
        let migrationId = migration.id
        // Chunks are written while the next is read and classified: the source and the ledger
        // each keep a core busy. Two writes may be in flight (the ledger runs them one after the
        // other), so the ledger has the next chunk, its statements already built, when one
        // commits; with one, it waited for the source's next chunk about a quarter of the time
        // (a 1M re-run). At most three chunks are held, so memory stays bounded.
        try await withThrowingTaskGroup(of: ScopeCounts.self) { writes in
            var writing = 0
            func flush() async throws {
                guard !chunk.isEmpty || !memberships.isEmpty || !newGroups.isEmpty else { return }
                while writing >= Self.claimWritesInFlight, let counts = try await writes.next() {
                    claimed.add(counts)
                    writing -= 1
                }
                let identities = chunk
                let groupRows = newGroups
                let pairs = memberships
                chunk.removeAll(keepingCapacity: true)
                newGroups.removeAll(keepingCapacity: true)
                memberships.removeAll(keepingCapacity: true)
                writes.addTask {
                    var counts = ScopeCounts()
                    if !identities.isEmpty {
                        counts = try await ledger.claimScope(migrationId: migrationId, identities: identities)
                            .newlyClaimed
                    }
                    if !pairs.isEmpty || !groupRows.isEmpty {
                        try await ledger.recordGroupCandidates(
                            migrationId: migrationId, groups: groupRows, memberships: pairs)
                    }
                    return counts
                }
                writing += 1
            }
            // Only identities with a directory user: the others are formers, which `all` never takes
            // and which have no groups.
            for try await classified in source.classifiedDirectoryUsers(classifier: classifier) {
                for anomaly in classified.anomalies {
                    anomalies += 1
                    if anomalies <= 20 {
                        logger.warning(
                            "source anomaly",
                            metadata: [
                                "user_key": "\(LogRedaction.identifier(anomaly.userKey ?? ""))",
                                "detail": "\(LogRedaction.text(anomaly.description))",
                            ])
                    }
                }
                let identity = classified.identity
                if groups {
                    for group in classified.candidateGroups(classifier) {
                        if knownGroups.insert(group.lowerName).inserted {
                            newGroups.append(
                                GroupCandidate(
                                    lowerName: group.lowerName, name: group.name, directoryId: group.directoryId))
                        }
                        memberships.append(MembershipCandidate(lowerName: group.lowerName, userKey: identity.userKey))
                    }
                }
                if claimsAll,
                    selection.categoryWithoutReference(
                        identity, isRequestReporter: reporters.contains(identity.userKey)) != nil
                {
                    chunk.append(identity)
                }
                if chunk.count >= Self.claimsPerTransaction || memberships.count >= Self.claimsPerTransaction {
                    try await flush()
                }
            }
            try await flush()
            for try await counts in writes { claimed.add(counts) }
        }
        if anomalies > 20 {
            logger.warning("more source anomalies not logged one by one", metadata: ["count": "\(anomalies)"])
        }
        return (claimed, anomalies)
    }
}

extension ScopeCounts {
    /// Adds another chunk's counts, category by category.
    fileprivate mutating func add(_ other: ScopeCounts) {
        customers += other.customers
        licensedUsers += other.licensedUsers
        formers += other.formers
    }
}

extension ClassifiedIdentity {
    /// The groups a group migration takes for this identity (the candidate rule the producer and
    /// the dry run share): a customer's or licensed user's groups, with every group they nest in;
    /// none for a former. The cut keeps the pairs whose member is in scope.
    func candidateGroups(_ classifier: IdentityClassifier) -> [GroupRow] {
        guard identity.kind == .customer || identity.kind == .licensedUser else { return [] }
        return classifier.licensing.groupsIncludingAncestors(of: directGroupIds)
    }
}
