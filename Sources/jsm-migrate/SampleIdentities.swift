import JSMDomain

/// Deterministic sample identities for the demo, with the edge cases of the decision table in
/// fixed proportions: same seed, same identities.
///
/// | share | what |
/// |---|---|
/// | 66 % | customers (1 in 50 disabled, 1 in 20 with upper case or spaces around the email) |
/// | 20 % | licensed users (1 in 50 disabled) |
/// | 5 % | deleted users referenced by data (formers) |
/// | 3 % | users only in an inactive directory (formers) |
/// | 3 % | customers with a missing, malformed or over-long email (rejected under the default policy) |
/// | 3 % | identities reusing an earlier identity's email in another case (merged duplicates) |
struct SampleIdentities {
    let count: Int
    let seed: UInt64

    func make() -> [ServerIdentity] {
        var random = SplitMix64(seed: seed)
        var identities: [ServerIdentity] = []
        identities.reserveCapacity(count)
        for index in 0..<count {
            let key = "JIRAUSER\(100_000 + index)"
            let name = "user\(index)"
            let roll = Int.random(in: 0..<100, using: &random)
            let disabled = Int.random(in: 0..<50, using: &random) == 0
            var email = "\(name)@example.com"
            if Int.random(in: 0..<20, using: &random) == 0 { email = "  \(name.uppercased())@Example.COM " }
            func identity(_ kind: IdentityKind, email: String?, active: Bool = true) -> ServerIdentity {
                ServerIdentity(
                    userKey: key, userName: name, displayName: "Sample User \(index)", rawEmail: email,
                    directoryId: kind == .deleted ? nil : 1, directoryPosition: kind == .deleted ? nil : 0,
                    isActive: active, kind: kind)
            }
            switch roll {
            case 0..<66: identities.append(identity(.customer, email: email, active: !disabled))
            case 66..<86: identities.append(identity(.licensedUser, email: email, active: !disabled))
            case 86..<91: identities.append(.deleted(userKey: key, userName: name))
            case 91..<94: identities.append(identity(.inactiveDirectory, email: email))
            case 94..<97:
                let bad = [nil, "not-an-email", String(repeating: "x", count: 65) + "@example.com"][
                    Int.random(in: 0..<3, using: &random)]
                identities.append(identity(.customer, email: bad))
            default:
                guard index > 0 else {
                    identities.append(identity(.customer, email: email))
                    continue
                }
                let earlier = Int.random(in: 0..<index, using: &random)
                let shared = "USER\(earlier)@EXAMPLE.com"
                identities.append(
                    identity(Int.random(in: 0..<2, using: &random) == 0 ? .customer : .licensedUser, email: shared))
            }
        }
        return identities
    }
}
