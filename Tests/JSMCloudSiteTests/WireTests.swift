import Foundation
import JSMDomain
import NIOCore
import Testing

@testable import JSMCloudSite

/// The hand-written parts of the site's hot path: JSON bodies written without `JSONEncoder`,
/// request bodies read without `JSONDecoder`, basic-auth decoding and account ids. Each is checked
/// against Foundation's own behaviour on the same input.
@Suite("Hot-path wire code")
struct WireTests {
    static let awkwardStrings = [
        "plain", "", "quote \" backslash \\ slash /", "tab\tnewline\nreturn\r", "bell \u{07} nul \u{00} esc \u{1B}",
        "é ü 日本語 🙂", "\u{2028}\u{2029}", "</script>",
    ]

    private func parsed(_ buffer: ByteBuffer) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(buffer.readableBytesView), options: [.fragmentsAllowed])
    }

    @Test("the JSON writer's strings read back as the same strings, whatever they contain")
    func stringsRoundTrip() throws {
        for value in Self.awkwardStrings {
            var json = JSONWriter()
            json.string(value)
            #expect(try parsed(json.buffer) as? String == value, "\(value.debugDescription)")
        }
    }

    @Test("the customer and user bodies carry the same fields and values as Atlassian's DTOs")
    func bodiesReadBack() throws {
        for name in Self.awkwardStrings {
            let account = SiteAccount(
                sequence: 7, accountId: "qm:a:b", type: .customer, email: "a\"b@example.com", displayName: name)
            let customer = try #require(
                try parsed(JSONWriter.text(of: CustomerBody(account, baseURL: "http://h:1"))) as? [String: Any])
            #expect(customer["displayName"] as? String == name)
            #expect(customer["emailAddress"] as? String == "a\"b@example.com")
            #expect(customer["accountId"] as? String == "qm:a:b")
            #expect(customer["name"] as? String == "qm:a:b" && customer["key"] as? String == "qm:a:b")
            #expect(customer["active"] as? Bool == true)
            let links = try #require(customer["_links"] as? [String: Any])
            #expect(links["self"] as? String == "http://h:1/rest/api/2/user?accountId=qm:a:b")
            #expect((links["avatarUrls"] as? [String: Any])?.isEmpty == true)

            let users = try #require(
                try parsed(
                    JSONWriter.text(of: [UserBody(account, baseURL: "http://h:1"), UserBody(account, baseURL: "")]))
                    as? [[String: Any]])
            #expect(users.count == 2)
            #expect(users.first?["accountType"] as? String == "customer")
            #expect(users.first?["displayName"] as? String == name)
            #expect(users.first?["self"] as? String == "http://h:1/rest/api/3/user?accountId=qm:a:b")
        }
        #expect(try parsed(JSONWriter.text(of: [UserBody]())) as? [Any] != nil)
    }

    @Test("both error shapes read back with their messages, and field errors in key order")
    func errorBodies() throws {
        let platform = try #require(
            try parsed(
                JSONWriter.text(
                    of: PlatformErrorBody(errorMessages: ["No \"way\""], errors: ["b": "2", "a": "1\n"])))
                as? [String: Any])
        #expect(platform["errorMessages"] as? [String] == ["No \"way\""])
        #expect(platform["errors"] as? [String: String] == ["a": "1\n", "b": "2"])
        let text = String(
            buffer: JSONWriter.text(of: PlatformErrorBody(errorMessages: [], errors: ["b": "2", "a": "1"])))
        #expect(text == #"{"errorMessages":[],"errors":{"a":"1","b":"2"}}"#)

        let desk = try #require(
            try parsed(JSONWriter.text(of: ServiceDeskErrorBody(errorMessage: "Exists", i18nKey: "k.x")))
                as? [String: Any])
        #expect(desk["errorMessage"] as? String == "Exists")
        let i18n = try #require(desk["i18nErrorMessage"] as? [String: Any])
        #expect(i18n["i18nKey"] as? String == "k.x")
        #expect((i18n["parameters"] as? [Any])?.isEmpty == true)
    }

    @Test("the flat reader takes plain creation bodies and leaves everything else to JSONDecoder")
    func flatReader() throws {
        func read(_ text: String) -> FlatJSONObject? { FlatJSONObject.parse(ByteBuffer(string: text)) }

        let plain = try #require(read(" { \"email\" : \"a@b.co\",\n\"displayName\":\"Ann 日本\", \"x\": null } "))
        let customer = try CustomerCreateRequest(flat: plain)
        #expect(customer.email == "a@b.co" && customer.displayName == "Ann 日本" && customer.fullName == nil)
        let user = try UserCreateRequest(
            flat: try #require(read(#"{"emailAddress":"u@b.co","products":["jira-software", "jira-core"]}"#)))
        #expect(user.products == ["jira-software", "jira-core"] && user.displayName == nil)
        #expect(try UserCreateRequest(flat: try #require(read(#"{"products":[]}"#))).products == [])
        #expect(read("{}") != nil)

        // Not the plain case: the decoder must see these, for its values or its error messages.
        let declined = [
            "", "[]", "{", #"{"email":"a\"b@c.co"}"#, #"{"email":"a@b.co",}"#, #"{"email":1}"#,
            #"{"email":true}"#, #"{"a":{"b":"c"}}"#, #"{"email":"a@b.co","email":"c@d.co"}"#,
            #"{"email":"a@b.co"} x"#, "{\"email\":\"tab\there\"}", #"{"products":[1]}"#,
        ]
        for text in declined { #expect(read(text) == nil, "\(text)") }
        #expect(read(#"{"products":"jira"}"#) != nil)
        #expect(throws: FlatJSONObject.GiveUp.self) {
            try UserCreateRequest(flat: try #require(read(#"{"products":"jira"}"#)))
        }
        var invalidUTF8 = ByteBuffer(string: #"{"email":""#)
        invalidUTF8.writeBytes([0xFF, 0xFE])
        invalidUTF8.writeString(#""}"#)
        #expect(FlatJSONObject.parse(invalidUTF8) == nil)
    }

    @Test("basic credentials decode exactly as Foundation's base64 does, and refuse what it refuses")
    func basicCredentials() {
        func password(_ header: String) -> String? {
            var header = header
            return header.withUTF8 { BasicCredentials.password(inHeader: $0) }.map {
                String(decoding: $0, as: UTF8.self)
            }
        }
        for credentials in [
            "me@example.com:tok", "a:", "ab:c", "abc:de", ":x:y", "üser:pässwörd",
            "x:" + String(repeating: "t", count: 97),
        ] {
            let encoded = Data(credentials.utf8).base64EncodedString()
            let expected = String(credentials[credentials.index(after: credentials.firstIndex(of: ":")!)...])
            #expect(password("Basic " + encoded) == expected, "\(credentials)")
            #expect(password("bAsIc   " + encoded + " ") == expected, "\(credentials)")
        }
        for header in [
            "Bearer abc", "Basic", "Basic ", "Basic bm9jb2xvbg==", "Basic YTpi=", "Basic YT=6Yg==", "Basic ####",
        ] {
            #expect(password(header) == nil, "\(header)")
        }
        #expect(password("Basic " + String(repeating: "A", count: BasicCredentials.maxHeaderBytes)) == nil)
    }

    @Test("account ids keep Atlassian's shapes and never repeat")
    func accountIds() {
        let customer = AccountIdentifier.make(for: .customer)
        let parts = customer.split(separator: ":")
        #expect(parts.count == 3 && parts[0] == "qm")
        #expect(parts.dropFirst().allSatisfy { UUID(uuidString: String($0)) != nil && $0 == $0.lowercased() })
        let atlassian = AccountIdentifier.make(for: .atlassian)
        #expect(atlassian.hasPrefix("712020:") && UUID(uuidString: String(atlassian.dropFirst(7))) != nil)
        let many = (0..<100_000).map { _ in AccountIdentifier.uniqueHex() }
        #expect(Set(many).count == many.count)
    }
}
