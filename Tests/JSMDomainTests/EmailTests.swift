import JSMDomain
import Testing

@Suite("Normalised email and Atlassian's email rule")
struct EmailTests {
    @Test(
        "Emails differing only in case or surrounding spaces normalise to one value",
        arguments: [
            "ann@example.com", " Ann@Example.COM ", "\tANN@EXAMPLE.COM\n", "ann@example.com\r\n",
            "\u{00A0}Ann@example.com\u{2003}",
        ])
    func caseAndSpacesDoNotMatter(raw: String) {
        #expect(NormalizedEmail(raw)?.value == "ann@example.com")
        #expect(EmailValidity(raw: raw) == .valid)
    }

    @Test("Missing or blank emails have no normalised form and are missing", arguments: [nil, "", "   ", "\n\t"])
    func missingEmail(raw: String?) {
        #expect(NormalizedEmail(raw) == nil)
        #expect(EmailValidity(raw: raw) == .missing)
    }

    @Test(
        "Malformed emails fail the pattern",
        arguments: [
            "ann", "ann@", "@example.com", "ann@example", "ann@example.c0m", "ann@@example.com",
            "ann@exa_mple.com", "an n@example.com", "ann@example.", "ann@.com", "anné@example.com",
            "ann!@example.com", "ann@exam ple.com", "ann@example.com.", "<ann@example.com>",
        ])
    func malformed(raw: String) {
        #expect(EmailValidity(raw: raw) == .malformed)
    }

    @Test(
        "Addresses the pattern accepts are valid, plus-addressing included",
        arguments: [
            "ann+jsm@example.com", "a.b_c%d-e@sub.example.co", "a@b.c", "ANN@EXAMPLE.COM",
            "x@-.io",  // odd, but the rule accepts it: the engine applies Atlassian's rule, not RFC 5322
        ])
    func valid(raw: String) {
        #expect(EmailValidity(raw: raw) == .valid)
    }

    @Test("A local part of 64 characters is valid, of 65 is over-long")
    func localPartLength() {
        let sixtyFour = String(repeating: "a", count: 64)
        #expect(EmailValidity(raw: sixtyFour + "@example.com") == .valid)
        #expect(EmailValidity(raw: sixtyFour + "b@example.com") == .localPartTooLong)
        #expect(EmailValidity(raw: " " + sixtyFour + "@example.com ") == .valid, "spaces are trimmed first")
    }

    @Test("An email that is already normal is returned unchanged")
    func alreadyNormal() {
        #expect(NormalizedEmail("bob.smith+tag@example.org")?.value == "bob.smith+tag@example.org")
    }

    @Test("Printing an email masks its local part")
    func masked() {
        let email = NormalizedEmail("Ann.Lee@Example.com")
        #expect(email?.masked == "a***@example.com")
        #expect(email.map { "\($0)" } == "a***@example.com")
        #expect(NormalizedEmail("no-at-sign")?.masked == "***")
    }

    @Test("Property: normalising is idempotent and insensitive to case and surrounding whitespace")
    func normalisationIsIdempotent() {
        var random = SplitMix64(seed: 0x5EED_0001)
        let pieces = ["a", "B", "z", "Q", "0", "9", ".", "@", "+", "-", "_", "é", "É", "İ", " ", "\t", "\n"]
        let padding = [" ", "\t", "\n", "\r\n", "\u{00A0}", "\u{3000}", ""]
        for _ in 0..<5_000 {
            let length = Int.random(in: 0...24, using: &random)
            let core = (0..<length).map { _ in pieces.randomElement(using: &random) ?? "" }.joined()
            let padded =
                (padding.randomElement(using: &random) ?? "") + core + (padding.randomElement(using: &random) ?? "")
            guard let once = NormalizedEmail(padded) else {
                #expect(NormalizedEmail(core) == nil, "blank after trimming: \(padded.debugDescription)")
                continue
            }
            #expect(NormalizedEmail(once.value) == once, "idempotent: \(padded.debugDescription)")
            #expect(NormalizedEmail(padded.uppercased())?.value == NormalizedEmail(padded.lowercased())?.value)
            #expect(once.value == once.value.lowercased())
        }
    }

    @Test("Property: the hand-written check agrees with Atlassian's pattern on generated addresses")
    func checkAgreesWithPattern() throws {
        let pattern = try Regex(#"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]+$"#).matchingSemantics(.unicodeScalar)
        var random = SplitMix64(seed: 0x5EED_0002)
        let local = Array("abcXYZ019._%+-")
        let domain = Array("abcXYZ019.-")
        let noise = Array("@. _!é#a1")
        func part(_ alphabet: [Character], _ range: ClosedRange<Int>) -> String {
            String(
                (0..<Int.random(in: range, using: &random)).map { _ in alphabet.randomElement(using: &random) ?? "a" })
        }
        var validCount = 0
        for _ in 0..<10_000 {
            var candidate = part(local, 0...70) + "@" + part(domain, 0...6) + "." + part(Array("abcXYZ1"), 0...3)
            if Bool.random(using: &random) {
                // Corrupt one position so the generator also explores near misses.
                var characters = Array(candidate)
                if !characters.isEmpty {
                    characters[Int.random(in: 0..<characters.count, using: &random)] =
                        noise.randomElement(using: &random) ?? "@"
                }
                candidate = String(characters)
            }
            let validity = EmailValidity(raw: candidate)
            let normalized = NormalizedEmail(candidate)?.value ?? ""
            let matches = normalized.wholeMatch(of: pattern) != nil
            let localLength = normalized.split(separator: "@", omittingEmptySubsequences: false).first?.count ?? 0
            switch validity {
            case .valid:
                validCount += 1
                #expect(matches && localLength <= 64, "\(candidate.debugDescription)")
            case .localPartTooLong: #expect(matches && localLength > 64, "\(candidate.debugDescription)")
            case .malformed: #expect(!matches, "\(candidate.debugDescription)")
            case .missing: #expect(normalized.isEmpty)
            }
        }
        #expect(validCount > 1_000, "the generator must produce valid addresses too")
    }
}
