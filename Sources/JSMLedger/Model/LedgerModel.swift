import JSMDomain

/// Where a migration stands, as operators see it (design section 7).
public enum MigrationState: String, Sendable, Hashable, CaseIterable {
    /// Created and validated; nothing published yet.
    case saved
    /// Messages are out; workers are at it.
    case running
    /// Every identity accounted for, none rejected.
    case complete
    /// Every identity accounted for, some rejected or parked: finished with errors.
    case incomplete
    /// Stopped by an error that needs an operator.
    case failed
}

/// The two phases of a migration; the move from one to the other happens exactly once.
public enum MigrationPhase: String, Sendable, Hashable, CaseIterable {
    /// Projects are expanded and identities claimed into the scope.
    case expand
    /// The scope is cut into batches and identities are migrated.
    case migrate
}

/// Where one batch stands.
public enum BatchState: String, Sendable, Hashable, CaseIterable {
    /// Waiting for a worker, or being retried.
    case pending
    /// Completed: its mapping rows and result are stored; a redelivery is answered from them.
    case done
    /// Set aside after its retries ran out, until an operator retries or discards it.
    case parked
    /// Given up by an operator; its identities stay unaccounted for in the totals.
    case discarded
}

/// What an operator asks for when starting a migration; the same id with the same definition
/// resumes it, and with another definition is refused.
public struct MigrationDefinition: Sendable, Hashable {
    /// The migration's id, chosen by the producer (the `migration_id` of every message).
    public var id: String
    /// The cloud site it targets; mappings are kept per site so a later migration sees them.
    public var siteId: String
    /// The selected projects (none when migrating in advance).
    public var projects: [SelectedProject]
    /// `--customers`, `--include-requestless`, `--users`.
    public var scope: ScopeOptions
    /// `--invalid-email`, `--duplicate-email`.
    public var policies: MigrationPolicies
    /// `--groups`.
    public var groups: Bool
    /// `--group-membership`.
    public var groupMembership: Bool
    /// Identities per batch when the scope is cut (an email is never split, so a batch may be larger).
    public var batchSize: Int
    /// Who started it (operator or host), for the audit trail.
    public var createdBy: String

    /// Creates a definition with the documented defaults.
    public init(
        id: String, siteId: String, projects: [SelectedProject], scope: ScopeOptions = ScopeOptions(),
        policies: MigrationPolicies = MigrationPolicies(), groups: Bool = false, groupMembership: Bool = false,
        batchSize: Int = 500, createdBy: String
    ) {
        self.id = id
        self.siteId = siteId
        self.projects = projects
        self.scope = scope
        self.policies = policies
        self.groups = groups
        self.groupMembership = groupMembership
        self.batchSize = batchSize
        self.createdBy = createdBy
    }
}

/// A migration as the ledger holds it.
public struct MigrationRecord: Sendable, Hashable {
    /// The migration's id.
    public let id: String
    /// The target site.
    public let siteId: String
    /// The selected project ids, ascending.
    public let projectIds: [Int64]
    /// Scope options it was started with.
    public let scope: ScopeOptions
    /// Policies it was started with.
    public let policies: MigrationPolicies
    /// `--groups`.
    public let groups: Bool
    /// `--group-membership`.
    public let groupMembership: Bool
    /// Identities per batch.
    public let batchSize: Int
    /// Operator-visible state.
    public let state: MigrationState
    /// Current phase.
    public let phase: MigrationPhase
    /// Number of selected projects.
    public let projectCount: Int
    /// Number of identity batches; `nil` until the scope is cut.
    public let batchCount: Int?
    /// Number of in-scope identities; `nil` until the scope is cut.
    public let identityCount: Int?
    /// Who started it.
    public let createdBy: String
    /// Milliseconds since 1970 (UTC) when it was created.
    public let createdAtMilliseconds: Int64
    /// Milliseconds since 1970 (UTC) of its last state or phase change.
    public let updatedAtMilliseconds: Int64
}

/// The answer to starting a migration.
public struct MigrationStart: Sendable, Hashable {
    /// The migration as stored.
    public let migration: MigrationRecord
    /// `true` when a migration with this id and definition already existed: continue it.
    public let resumed: Bool
}

/// What one claim call added to a migration's scope.
public struct ScopeClaim: Sendable, Hashable {
    /// Identities nobody had claimed before, per category: summed over all claims, the scope.
    public let newlyClaimed: ScopeCounts
    /// Identities given (each user key once), claimed now or before.
    public let identitiesGiven: Int
}

/// A project's counts once it is expanded, computed from the ledger's own rows so that a
/// redelivered expansion reports the same numbers.
public struct ProjectExpansion: Sendable, Hashable {
    /// The project.
    public let projectId: Int64
    /// Distinct in-scope identities the project references: the base of the per-project invariant.
    public let referenced: ScopeCounts
    /// Identities this project claimed first.
    public let claimed: ScopeCounts
    /// Issues the worker read.
    public let issuesScanned: Int64
}

/// The stored outcome of an `ExpandProject` request.
public struct ProjectExpansionRecord: Sendable, Hashable {
    /// The counts.
    public let expansion: ProjectExpansion
    /// The `ProjectResult` bytes to reply with.
    public let result: [UInt8]
    /// `true` when the project had been recorded before: reply from `result`, change nothing.
    public let replayed: Bool
}

/// How the scope was cut into identity batches.
public struct BatchCut: Sendable, Hashable {
    /// Number of batches.
    public let batchCount: Int
    /// Number of identities in them.
    public let identityCount: Int
    /// Identities settled `already_migrated` by the cut itself, in no batch (every identity of
    /// their email already had an account mapped on the site): the rest of the scope.
    public let settledAtCut: Int

    /// Describes a cut.
    public init(batchCount: Int, identityCount: Int, settledAtCut: Int = 0) {
        self.batchCount = batchCount
        self.identityCount = identityCount
        self.settledAtCut = settledAtCut
    }
}

/// The answer to ``Ledger/advanceToMigratePhase(migrationId:)``.
public enum PhaseAdvance: Sendable, Hashable {
    /// This caller moved the migration to the migrate phase and cut its batches: it publishes them.
    case advanced(BatchCut)
    /// Someone else already did; nothing changed.
    case alreadyAdvanced(BatchCut)
    /// Projects are still being expanded; nothing changed.
    case projectsPending(Int)

    /// Whether this caller won the move (and so owns publishing the batches).
    public var won: Bool {
        if case .advanced = self { return true }
        return false
    }
}

/// One batch as the ledger holds it.
public struct LedgerBatch: Sendable, Hashable {
    /// The RPC method name of the messages that carry it, e.g. `MigrateIdentities`.
    public static let identityMethod = "MigrateIdentities"

    /// Its migration.
    public let migrationId: String
    /// Its id (the message's `batch_id` and `correlation_id`).
    public let batchId: String
    /// The RPC method that carries it.
    public let method: String
    /// 0-based position among the migration's batches of that method.
    public let sequence: Int64
    /// Where it stands.
    public let state: BatchState
    /// Identities in it.
    public let identityCount: Int
    /// Deliveries that reached the ledger (failed and successful).
    public let attempts: Int
    /// The last failure, one line; `nil` once done or never failed.
    public let lastError: String?
    /// Milliseconds since 1970 (UTC) of the first attempt.
    public let firstAttemptAtMilliseconds: Int64?
    /// Milliseconds since 1970 (UTC) of the last attempt.
    public let lastAttemptAtMilliseconds: Int64?
    /// Milliseconds since 1970 (UTC) of the completion.
    public let completedAtMilliseconds: Int64?
}

/// A batch with the identities a worker needs to process it (phase two reads no source database).
public struct IdentityBatchContent: Sendable, Hashable {
    /// The batch.
    public let batch: LedgerBatch
    /// Its identities, ordered by normalised email, then user key.
    public let identities: [ServerIdentity]
}

/// One identity's result, as a worker hands it to ``Ledger/completeBatch(migrationId:batchId:mappings:result:)``.
public struct IdentityMapping: Sendable, Hashable {
    /// The server user key (`app_user.user_key`).
    public var userKey: String
    /// How the identity ended.
    public var outcome: Outcome
    /// The cloud account; required for `created` and `linked`.
    public var accountId: String?
    /// The account's type; required for `created` and `linked`.
    public var accountType: CloudAccountType?
    /// Report flags.
    public var flags: OutcomeFlags
    /// Why it got no account of its own (a ``DecisionReason`` raw value, or `site_refused`).
    public var reason: String?

    /// Creates a mapping.
    public init(
        userKey: String, outcome: Outcome, accountId: String? = nil, accountType: CloudAccountType? = nil,
        flags: OutcomeFlags = [], reason: String? = nil
    ) {
        self.userKey = userKey
        self.outcome = outcome
        self.accountId = accountId
        self.accountType = accountType
        self.flags = flags
        self.reason = reason
    }

    /// The mapping for a decision the rules made, once the worker has carried out its action.
    ///
    /// - Parameter account: the account created or linked (for `former`, the container's account
    ///   when the site exposes one); `nil` for `rejected` and `already_migrated`.
    public init(_ decided: IdentityDecision, account: ExistingCloudAccount?) {
        self.init(
            userKey: decided.identity.userKey, outcome: decided.decision.outcome, accountId: account?.accountId,
            accountType: decided.decision.outcome == .former ? nil : account?.type, flags: decided.decision.flags,
            reason: decided.decision.reason?.rawValue)
    }
}

/// The answer to completing a batch.
public struct BatchCompletion: Sendable, Hashable {
    /// `true` when the batch was already done: nothing changed; reply from `result`.
    public let replayed: Bool
    /// The stored `BatchResult` bytes.
    public let result: [UInt8]
}

/// A mapping row: what the site holds for a server identity, and which migration decided it.
public struct MappingRecord: Sendable, Hashable {
    /// The site.
    public let siteId: String
    /// The server user key.
    public let userKey: String
    /// The cloud account, when there is one.
    public let accountId: String?
    /// Its type, when there is one.
    public let accountType: CloudAccountType?
    /// The outcome that set the row (`already_migrated` never does).
    public let outcome: Outcome
    /// Report flags.
    public let flags: OutcomeFlags
    /// Why no account, when so.
    public let reason: String?
    /// The migration that set the row.
    public let migrationId: String
    /// The batch that set the row.
    public let batchId: String
}

/// Identities of one category counted by outcome; `pending` are claimed but not yet decided.
public struct OutcomeTally: Sendable, Hashable {
    /// Identities in scope.
    public var inScope: Int = 0
    /// `created`
    public var created: Int = 0
    /// `linked`
    public var linked: Int = 0
    /// `former`
    public var former: Int = 0
    /// `rejected`
    public var rejected: Int = 0
    /// `already_migrated`
    public var alreadyMigrated: Int = 0

    /// Creates an empty tally.
    public init() {}

    /// `created + linked + former + rejected + already_migrated`.
    public var accountedFor: Int { created + linked + former + rejected + alreadyMigrated }
    /// In scope but not yet accounted for.
    public var pending: Int { inScope - accountedFor }
    /// The reconciliation invariant for this tally.
    public var balances: Bool { inScope == accountedFor }

    /// Counts `count` identities in scope with `outcome` (`nil`: not decided yet).
    public mutating func add(outcome: Outcome?, count: Int) {
        inScope += count
        switch outcome {
        case .created: created += count
        case .linked: linked += count
        case .former: former += count
        case .rejected: rejected += count
        case .alreadyMigrated: alreadyMigrated += count
        case nil: break
        }
    }

    /// Both tallies together, column by column (a total row, or a category's projects summed).
    public static func + (lhs: OutcomeTally, rhs: OutcomeTally) -> OutcomeTally {
        var sum = lhs
        sum.inScope += rhs.inScope
        sum.created += rhs.created
        sum.linked += rhs.linked
        sum.former += rhs.former
        sum.rejected += rhs.rejected
        sum.alreadyMigrated += rhs.alreadyMigrated
        return sum
    }
}

/// A migration's totals, per category and per project: what the aggregator and `report` check.
public struct LedgerTotals: Sendable, Hashable {
    /// Per category over the whole migration (each identity once).
    public let byCategory: [ScopeCategory: OutcomeTally]
    /// Per selected project, per category (the identities that project references).
    public let byProject: [Int64: [ScopeCategory: OutcomeTally]]
    /// Decided identities without a mapping row on the migration's site (should be 0).
    public let decidedWithoutMapping: Int

    /// All categories together.
    public var overall: OutcomeTally { byCategory.values.reduce(OutcomeTally(), +) }

    /// `in scope = created + linked + former + rejected + already_migrated` for the migration,
    /// every category and every project, and one mapping row per decided identity.
    public var invariantHolds: Bool {
        byCategory.values.allSatisfy(\.balances)
            && byProject.values.allSatisfy { $0.values.allSatisfy(\.balances) }
            && decidedWithoutMapping == 0
    }
}

/// The totals of the scope rows a migration's cut left outside every batch: the identities the
/// claims settled (an earlier migration mapped them on the site). No worker writes those rows and
/// no claim adds any after the cut, and a mapping that holds an account is never overwritten, so
/// these totals, read once after the cut, stay true for the rest of the migration (see
/// ``Ledger/settledOutsideBatches(migrationId:)``).
public struct SettledOutsideBatches: Sendable, Hashable {
    /// The migration they belong to.
    public let migrationId: String
    /// Per category.
    public let byCategory: [ScopeCategory: OutcomeTally]
    /// Decided identities among them without a mapping row on the migration's site (should be 0).
    public let decidedWithoutMapping: Int

    /// Whether the cut left no row outside the batches (a first migration).
    public var isEmpty: Bool { byCategory.values.allSatisfy { $0.inScope == 0 } }

    /// The decided identities per category (those with no outcome counted out), as the
    /// aggregator adds them to the replies' totals: no reply will ever carry them.
    public var decidedByCategory: [ScopeCategory: Int] {
        byCategory.compactMapValues { $0.accountedFor == 0 ? nil : $0.accountedFor }
    }
}

/// What keeps the invariant from holding, named so that an operator can act.
public struct MissingWork: Sendable, Hashable {
    /// Identity batches not done (pending, parked or discarded), by sequence.
    public let batches: [LedgerBatch]
    /// Undecided identities with the batch they wait in.
    public let undecided: [UndecidedIdentity]
    /// Decided identities that have no mapping row on the site.
    public let unmapped: [String]

    /// Whether nothing is missing.
    public var isEmpty: Bool { batches.isEmpty && undecided.isEmpty && unmapped.isEmpty }
}

/// An in-scope identity that has no outcome yet.
public struct UndecidedIdentity: Sendable, Hashable {
    /// The server user key.
    public let userKey: String
    /// The batch it waits in; `nil` when it is in no batch (claimed after the scope was cut).
    public let batchId: String?
}

/// What ``Ledger/migrateSchema()`` did.
public struct SchemaMigrationReport: Sendable, Hashable {
    /// Versions applied by this call, ascending; empty when the ledger was up to date.
    public let applied: [Int64]
    /// The ledger's version now.
    public let currentVersion: Int64
}
