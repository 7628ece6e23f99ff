import JSMContracts
import JSMDomain

/// Hand-written protobuf wire encoding, to build bytes a future schema would send.
enum Wire {
    /// Varint encoding of `value` (at most 10 bytes).
    static func varint(_ value: UInt64) -> [UInt8] {
        var bytes: [UInt8] = []
        var rest = value
        for _ in 0..<10 {
            if rest < 0x80 {
                bytes.append(UInt8(rest))
                return bytes
            }
            bytes.append(UInt8(rest & 0x7F) | 0x80)
            rest >>= 7
        }
        return bytes
    }

    /// A varint field (wire type 0).
    static func varintField(_ number: UInt64, _ value: UInt64) -> [UInt8] {
        varint(number << 3) + varint(value)
    }

    /// A length-delimited field (wire type 2).
    static func bytesField(_ number: UInt64, _ payload: [UInt8]) -> [UInt8] {
        varint(number << 3 | 2) + varint(UInt64(payload.count)) + payload
    }
}

/// Builders of fully populated contract messages: every field set to a non-default value,
/// so a round trip that lost any field would compare unequal.
enum Fixture {
    static let migrationID = "mig-2026-11-25-0001"

    static let options: JSMMigrationOptions = {
        var options = JSMMigrationOptions()
        options.users = .related
        options.customers = .all
        options.includeRequestless = true
        options.groups = true
        options.groupMembership = true
        options.invalidEmail = .former
        options.duplicateEmail = .merge
        options.batchSize = 500
        return options
    }()

    /// The `index`-th identity of a synthetic batch, cycling through every kind, with
    /// duplicate emails, missing and invalid emails, disabled users and non-ASCII names.
    static func identity(_ index: Int) -> JSMIdentity {
        let kinds: [JSMIdentityKind] = [.customer, .licensedUser, .deleted, .inactiveDirectory]
        var identity = JSMIdentity()
        identity.userKey = "JIRAUSER\(10_000 + index)"
        identity.userName = "User.\(index)"
        identity.displayName = "Zoë Ærøskøbing \(index) 社員"
        // Every seventh identity shares its email with the previous one (a duplicate).
        let emailIndex = index % 7 == 6 ? index - 1 : index
        switch index % 50 {
        case 13:
            identity.email = ""
            identity.normalizedEmail = ""
        case 27:
            identity.email = "  not-an-email \(index) "
            identity.normalizedEmail = "not-an-email \(index)"
        default:
            identity.email = " Person+\(emailIndex)@Example.COM "
            identity.normalizedEmail = "person+\(emailIndex)@example.com"
        }
        identity.kind = kinds[index % kinds.count]
        identity.directoryID = identity.kind == .deleted ? 0 : Int64(10_000 + index % 3)
        identity.directoryPosition = Int64(index % 3)
        identity.disabled = index % 11 == 0
        return identity
    }

    /// A batch of `count` identities ordered by normalised email, as the producer cuts it.
    static func identityBatch(count: Int) -> JSMIdentityBatch {
        var batch = JSMIdentityBatch()
        batch.header = JSMMessageHeader(migrationID: migrationID, batchID: "identities-0042")
        batch.options = options
        batch.targetSiteID = "site-7f3c"
        batch.batchSequence = 42
        batch.batchCount = 2000
        batch.identities = (0..<count).map(identity).sorted {
            ($0.normalizedEmail, $0.userKey) < ($1.normalizedEmail, $1.userKey)
        }
        return batch
    }

    static func outcomeTotals(base: UInt64) -> JSMOutcomeTotals {
        var totals = JSMOutcomeTotals()
        totals.created = base + 1
        totals.linked = base + 2
        totals.former = base + 3
        totals.rejected = base + 4
        totals.alreadyMigrated = base + 5
        return totals
    }

    static func batchResult() -> JSMBatchResult {
        var result = JSMBatchResult()
        result.header = JSMMessageHeader(migrationID: migrationID, batchID: "identities-0042")
        var merged = JSMIdentityResult()
        merged.userKey = "JIRAUSER10006"
        merged.outcome = .linked
        merged.cloudAccountID = "557058:0a1b2c3d"
        merged.accountType = .atlassian
        merged.flags = [.disabled, .merged]
        merged.detail = "merged into JIRAUSER10005"
        merged.primaryUserKey = "JIRAUSER10005"
        var rejected = JSMIdentityResult()
        rejected.userKey = "JIRAUSER10013"
        rejected.outcome = .rejected
        rejected.rejectionReason = .missingEmail
        rejected.detail = "email is empty"
        result.results = [merged, rejected]
        result.totals = outcomeTotals(base: 0)
        result.customers = outcomeTotals(base: 10)
        result.licensedUsers = outcomeTotals(base: 20)
        result.formers = outcomeTotals(base: 30)
        result.attempt = 3
        result.workerID = "worker-a/4242"
        result.replayed = true
        return result
    }

    static func projectScope() -> JSMProjectScope {
        var scope = JSMProjectScope()
        scope.header = JSMMessageHeader(migrationID: migrationID, batchID: "project-10100")
        scope.projectID = 10_100
        scope.projectKey = "HELP"
        scope.serviceProject = true
        scope.options = options
        scope.projectName = "Help Centre"
        return scope
    }

    static func classCounts(base: UInt64) -> JSMIdentityClassCounts {
        var counts = JSMIdentityClassCounts()
        counts.customers = base + 1
        counts.licensedUsers = base + 2
        counts.formers = base + 3
        return counts
    }

    static func projectResult() -> JSMProjectResult {
        var result = JSMProjectResult()
        result.header = JSMMessageHeader(migrationID: migrationID, batchID: "project-10100")
        result.projectID = 10_100
        result.projectKey = "HELP"
        result.referenced = classCounts(base: 100)
        result.claimed = classCounts(base: 50)
        result.issuesScanned = 123_456
        result.attempt = 1
        result.workerID = "worker-b/77"
        result.replayed = true
        return result
    }

    static func groupBatch() -> JSMGroupBatch {
        var batch = JSMGroupBatch()
        batch.header = JSMMessageHeader(migrationID: migrationID, batchID: "groups-0001")
        batch.options = options
        batch.targetSiteID = "site-7f3c"
        batch.batchSequence = 1
        batch.batchCount = 3
        batch.groups = (0..<3).map { index in
            var group = JSMGroup()
            group.name = "Service-Desk-Team-\(index)"
            group.lowerName = "service-desk-team-\(index)"
            group.directoryID = 10_000 + Int64(index)
            return group
        }
        return batch
    }

    static func groupBatchResult() -> JSMGroupBatchResult {
        var result = JSMGroupBatchResult()
        result.header = JSMMessageHeader(migrationID: migrationID, batchID: "groups-0001")
        var reused = JSMGroupResult()
        reused.lowerName = "jira-administrators"
        reused.outcome = .reused
        reused.cloudGroupID = "group-9"
        reused.permissionEscalationRisk = true
        reused.detail = "a cloud group with this name already exists"
        result.results = [reused]
        var totals = JSMGroupTotals()
        totals.created = 1
        totals.reused = 2
        totals.alreadyMigrated = 3
        totals.rejected = 4
        totals.permissionEscalationRisks = 2
        result.totals = totals
        result.attempt = 2
        result.workerID = "worker-c/1"
        result.replayed = true
        return result
    }

    static func membershipBatch() -> JSMMembershipBatch {
        var batch = JSMMembershipBatch()
        batch.header = JSMMessageHeader(migrationID: migrationID, batchID: "memberships-0007")
        batch.options = options
        batch.targetSiteID = "site-7f3c"
        batch.batchSequence = 7
        batch.batchCount = 9
        batch.memberships = (0..<3).map { index in
            var membership = JSMMembership()
            membership.groupLowerName = "service-desk-team"
            membership.memberUserKey = "JIRAUSER\(10_000 + index)"
            return membership
        }
        return batch
    }

    static func membershipBatchResult() -> JSMMembershipBatchResult {
        var result = JSMMembershipBatchResult()
        result.header = JSMMessageHeader(migrationID: migrationID, batchID: "memberships-0007")
        var skipped = JSMMembershipResult()
        skipped.groupLowerName = "service-desk-team"
        skipped.memberUserKey = "JIRAUSER10002"
        skipped.outcome = .skippedCustomerAccount
        skipped.detail = "customer accounts cannot join groups"
        result.results = [skipped]
        var totals = JSMMembershipTotals()
        totals.added = 1
        totals.alreadyMember = 2
        totals.alreadyMigrated = 3
        totals.skipped = 4
        totals.rejected = 5
        result.totals = totals
        result.attempt = 1
        result.workerID = "worker-d/9"
        result.replayed = true
        return result
    }
}
