import JSMDomain
import Testing

@Suite("Several in-scope identities with one email")
struct DuplicateEmailTests {
    static let merge = MigrationPolicies(duplicateEmail: .merge)
    static let block = MigrationPolicies(duplicateEmail: .block)

    @Test("Two server users sharing an email, merge: the licensed user is primary, the customer follows it")
    func mergeLicensedBeforeCustomer() throws {
        let customer = Make.customer("cust", email: " Pat@Example.com", position: 0)
        let agent = Make.licensed("agent", email: "pat@example.COM", position: 5)
        let plan = BatchPlan(identities: [customer, agent], priorMappings: [:], policies: Self.merge)

        #expect(plan.settled.isEmpty)
        let group = try #require(plan.pending.first)
        #expect(plan.pending.count == 1)
        #expect(group.email.value == "pat@example.com")
        #expect(group.primary.userKey == "agent")
        #expect(group.followers.map(\.userKey) == ["cust"])

        let primary = group.decidePrimary(existingAccounts: [])
        #expect(primary.outcome == .created)
        #expect(primary.action == .createAtlassianAccount)

        let created = ExistingCloudAccount(accountId: "new-atl", type: .atlassian)
        let followers = group.decideFollowers(primaryAccount: created)
        #expect(followers.map(\.identity.userKey) == ["cust"])
        #expect(followers.first?.decision == Decision(outcome: .linked, flags: .merged, action: .link(created)))
    }

    @Test("Among one kind, the lower directory position is primary, then the smaller user key")
    func primaryByPositionThenKey() {
        let far = Make.customer("aaa", email: "x@example.com", position: 7)
        let nearB = Make.customer("bbb", email: "x@example.com", position: 1)
        let nearC = Make.customer("ccc", email: "x@example.com", position: 1)
        let unknown = Make.customer("000", email: "x@example.com", position: nil)
        #expect(MigrationRules.primary(among: [far, nearC, unknown, nearB])?.userKey == "bbb")
        #expect(MigrationRules.primary(among: [far, unknown])?.userKey == "aaa")
        #expect(MigrationRules.primary(among: []) == nil)
    }

    @Test("Two server users sharing an email, block: both rejected, nothing asked of the site")
    func blockRejectsAll() {
        let identities = [
            Make.customer("c1", email: "same@example.com"),
            Make.licensed("l1", email: "SAME@example.com ", active: false),
        ]
        let plan = BatchPlan(identities: identities, priorMappings: [:], policies: Self.block)
        #expect(plan.pending.isEmpty)
        #expect(plan.settled.count == 2)
        for settled in plan.settled {
            #expect(settled.decision.outcome == .rejected)
            #expect(settled.decision.reason == .duplicateEmailBlocked)
            #expect(settled.decision.action == .nothing)
        }
        #expect(plan.settled.first { $0.identity.userKey == "l1" }?.decision.flags == .disabled)
    }

    @Test("A unique email under block is not a duplicate: it waits for the site like any other")
    func uniqueEmailUnderBlock() {
        let plan = BatchPlan(
            identities: [Make.customer("a"), Make.customer("b")], priorMappings: [:], policies: Self.block)
        #expect(plan.settled.isEmpty)
        #expect(plan.pending.map(\.primary.userKey) == ["a", "b"])
        #expect(plan.pending.allSatisfy { $0.followers.isEmpty })
    }

    @Test("Merge with an already-migrated primary: the others (one disabled) link to its earlier account")
    func primaryAlreadyMigrated() {
        let prior = PriorMapping(accountId: "atl-early", accountType: .atlassian)
        let plan = BatchPlan(
            identities: [
                Make.customer("c", email: "p@example.com", active: false), Make.licensed("l", email: "p@example.com"),
            ],
            priorMappings: ["l": prior], policies: Self.merge)
        #expect(plan.pending.isEmpty)
        let byKey = Dictionary(uniqueKeysWithValues: plan.settled.map { ($0.identity.userKey, $0.decision) })
        #expect(byKey["l"]?.outcome == .alreadyMigrated)
        #expect(byKey["c"] == Decision(outcome: .linked, flags: [.merged, .disabled], action: .link(prior.account)))
    }

    @Test("An already-migrated follower stays already migrated; the primary still waits for the site")
    func followerAlreadyMigrated() throws {
        let plan = BatchPlan(
            identities: [Make.customer("c", email: "p@example.com"), Make.licensed("l", email: "p@example.com")],
            priorMappings: ["c": PriorMapping(accountId: "cus-early", accountType: .customer)], policies: Self.merge)
        #expect(plan.settled.map(\.identity.userKey) == ["c"])
        #expect(plan.settled.first?.decision.outcome == .alreadyMigrated)
        let group = try #require(plan.pending.first)
        #expect(group.primary.userKey == "l")
        #expect(group.followers.isEmpty)
        #expect(group.decidePrimary(existingAccounts: [Make.customerAccount]).flags == .secondAccount)
    }

    @Test("Block with an already-migrated member: it keeps its mapping, the other is rejected")
    func blockWithPriorMapping() {
        let plan = BatchPlan(
            identities: [Make.customer("c", email: "p@example.com"), Make.licensed("l", email: "p@example.com")],
            priorMappings: ["l": PriorMapping(accountId: "atl-early", accountType: .atlassian)], policies: Self.block)
        let byKey = Dictionary(uniqueKeysWithValues: plan.settled.map { ($0.identity.userKey, $0.decision) })
        #expect(byKey["l"]?.outcome == .alreadyMigrated)
        #expect(byKey["c"]?.reason == .duplicateEmailBlocked)
    }

    @Test("Formers and invalid emails are decided alone, never grouped as duplicates")
    func formersAndInvalidEmailsAreNotDuplicates() {
        let identities = [
            Make.customer("c1", email: "root@localhost"), Make.customer("c2", email: "ROOT@localhost"),
            Make.inactiveDirectoryUser("old", email: "pat@example.com"), Make.customer("pat", email: "pat@example.com"),
            .deleted(userKey: "gone"),
        ]
        let plan = BatchPlan(identities: identities, priorMappings: [:], policies: Self.block)
        let byKey = Dictionary(uniqueKeysWithValues: plan.settled.map { ($0.identity.userKey, $0.decision) })
        #expect(byKey["c1"]?.reason == .malformedEmail)
        #expect(byKey["c2"]?.reason == .malformedEmail)
        #expect(byKey["old"]?.outcome == .former)
        #expect(byKey["gone"]?.outcome == .former)
        #expect(plan.pending.map(\.primary.userKey) == ["pat"], "the customer is alone among account holders")
    }

    @Test("An identity delivered twice in one batch is planned once")
    func sameUserKeyOnce() {
        let twice = Make.customer("c")
        let plan = BatchPlan(identities: [twice, twice, Make.customer("d")], priorMappings: [:], policies: Self.merge)
        #expect(plan.identityCount == 2)
        #expect(plan.pending.allSatisfy { $0.followers.isEmpty })
    }

    @Test("Property: the primary and the followers do not depend on the order of the batch")
    func primaryIsOrderIndependent() throws {
        var random = SplitMix64(seed: 0x5EED_0003)
        let kinds: [IdentityKind] = [.customer, .licensedUser]
        for round in 0..<200 {
            let size = Int.random(in: 2...8, using: &random)
            let group = (0..<size).map { index in
                Make.identity(
                    "u\(round)-\(Int.random(in: 0...999, using: &random))-\(index)",
                    kind: kinds.randomElement(using: &random) ?? .customer,
                    email: ["Dup@Example.com", " dup@example.com", "DUP@EXAMPLE.COM\n"].randomElement(using: &random),
                    position: [nil, 0, 1, 2].randomElement(using: &random) ?? nil, active: Bool.random(using: &random))
            }
            let reference = BatchPlan(identities: group, priorMappings: [:], policies: Self.merge)
            let expected = try #require(reference.pending.first)
            #expect(reference.pending.count == 1)
            #expect(expected.followers.count == size - 1)
            for _ in 0..<10 {
                let shuffled = BatchPlan(
                    identities: group.shuffled(using: &random), priorMappings: [:], policies: Self.merge)
                #expect(shuffled.pending.first?.primary == expected.primary)
                #expect(shuffled.pending.first?.followers == expected.followers)
            }
            // The primary is never a customer while a licensed user shares the email.
            if group.contains(where: { $0.kind == .licensedUser }) {
                #expect(expected.primary.kind == .licensedUser)
            }
        }
    }
}
