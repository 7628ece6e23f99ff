import JSMDomain
import JSMLedger
import Testing

@testable import JSMPipeline

/// The membership rule the worker and the dry run share, and the dry run's counting of what the
/// site will answer: pure, no site, no ledger.
@Suite("Group dry run rules")
struct GroupDryRunRuleTests {
    typealias Step = MembershipRule.Step<String, String>

    @Test("the membership rule: recorded before, no group, no account, a customer account, else add at the site")
    func membershipRule() {
        func step(_ recorded: Bool, _ group: String?, _ account: String?, _ type: CloudAccountType?) -> Step {
            MembershipRule.step(alreadyMigrated: recorded, group: group, account: account, accountType: type)
        }
        // An earlier migration's record wins over everything else: no site call.
        #expect(step(true, nil, nil, nil) == .ended(.alreadyMigrated, detail: nil))
        #expect(step(true, "g", "a", .atlassian) == .ended(.alreadyMigrated, detail: nil))
        guard case .ended(.skippedNoGroup, let noGroup) = step(false, nil, "a", .atlassian) else {
            Issue.record("a pair without a migrated group must be skipped_no_group")
            return
        }
        #expect(noGroup?.contains("group") == true)
        guard case .ended(.skippedNoAccount, _) = step(false, "g", nil, nil) else {
            Issue.record("a pair without an account must be skipped_no_account")
            return
        }
        guard case .ended(.skippedCustomerAccount, _) = step(false, "g", "a", .customer) else {
            Issue.record("a customer account must be skipped_customer_account")
            return
        }
        #expect(step(false, "g", "a", .atlassian) == .addAtSite(group: "g", account: "a"))
    }

    @Test("a settled identity's account: linked to an existing one, created for itself, none, or its earlier one")
    func predictedAccounts() {
        let identity = ServerIdentity(
            userKey: "ann", userName: "ann", displayName: "Ann", rawEmail: "ann@example.com", directoryId: 1,
            directoryPosition: 0, isActive: true, kind: .licensedUser)
        let existing = ExistingCloudAccount(accountId: "acc-1", type: .atlassian)
        func account(_ decision: Decision, prior: PriorMapping? = nil) -> PredictedAccount? {
            PredictedAccount.of(IdentityDecision(identity: identity, decision: decision), prior: prior)
        }
        #expect(account(Decision(outcome: .linked, flags: [], action: .link(existing))) == .existing(existing))
        #expect(
            account(Decision(outcome: .created, flags: [], action: .createAtlassianAccount))
                == .new(.atlassian, owner: "ann"))
        #expect(
            account(Decision(outcome: .created, flags: [], action: .createCustomer)) == .new(.customer, owner: "ann"))
        #expect(account(Decision(outcome: .former, flags: [], action: .mapToFormer)) == nil)
        #expect(account(Decision(outcome: .rejected, flags: [], action: .nothing)) == nil)
        let prior = PriorMapping(accountId: "acc-0", accountType: .customer)
        #expect(
            account(Decision(outcome: .alreadyMigrated, flags: [], action: .nothing), prior: prior)
                == .existing(prior.account))
    }

    @Test("group totals: reused groups carry the escalation risk, every group is counted once")
    func groupTally() {
        let tally = GroupTally.predicted([
            .created(lowerName: "a"), .created(lowerName: "b"), .reused(cloudGroupId: "g1"),
            .alreadyMigrated(cloudGroupId: "g2"),
        ])
        #expect(tally.inScope == 4 && tally.created == 2 && tally.reused == 1 && tally.alreadyMigrated == 1)
        #expect(tally.escalationRisks == 1 && tally.rejected == 0 && tally.balances)
    }

    @Test("memberships: existing members, accounts shared by merged identities, new groups and a vanished group")
    func membershipForecast() {
        let member = ExistingCloudAccount(accountId: "member", type: .atlassian)
        let outsider = ExistingCloudAccount(accountId: "outsider", type: .atlassian)
        let groups: [String: PredictedGroup] = [
            "reused": .reused(cloudGroupId: "g-reused"), "new": .created(lowerName: "new"),
            "gone": .alreadyMigrated(cloudGroupId: "g-gone"),
        ]
        let accounts: [String: PredictedAccount] = [
            "member": .existing(member), "outsider": .existing(outsider),
            "fresh": .new(.atlassian, owner: "fresh"), "fresh-dup": .new(.atlassian, owner: "fresh"),
            "customer": .new(.customer, owner: "customer"),
        ]
        var forecast = MembershipForecast(groups: groups, accounts: accounts)
        func add(_ group: String, _ key: String, recorded: Bool = false) {
            forecast.add(MembershipCandidate(lowerName: group, userKey: key), alreadyMigrated: recorded)
        }
        add("reused", "member")  // already a member of the cloud group: already_member
        add("reused", "outsider")  // not yet a member: added
        add("reused", "fresh")  // a new account and its merged duplicate: one added, one already_member
        add("reused", "fresh-dup")
        add("new", "member")  // a group the run creates has no members yet: added
        add("reused", "customer")  // skipped_customer_account
        add("reused", "former")  // no account: skipped_no_account
        add("rejected", "member")  // no migrated group: skipped_no_group
        add("reused", "recorded", recorded: true)  // already_migrated
        add("gone", "member")  // the site lost the group: the addition is refused
        #expect(forecast.groupsToRead == ["g-reused", "g-gone"])
        var members: [String: Set<String>?] = ["g-reused": ["member", "someone-else"]]
        members.updateValue(nil, forKey: "g-gone")  // the site answered 404 for it
        let tally = forecast.totals(members: members)
        #expect(tally.inScope == 10)
        #expect(tally.added == 3, "outsider, fresh (once) and member into the new group")
        #expect(tally.alreadyMember == 2, "member of the reused group, and fresh's merged duplicate")
        #expect(tally.skipped == 3 && tally.alreadyMigrated == 1 && tally.rejected == 1)
        #expect(tally.balances)
    }
}
