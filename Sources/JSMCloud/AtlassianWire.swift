import NIOCore

/// The JSON bodies of Atlassian's REST API that the adapter sends and reads: only the fields it
/// needs, so additions on Atlassian's side never break it.

/// `POST /rest/servicedeskapi/customer`.
struct CustomerCreateBody: Encodable, HandWrittenJSON {
    let email: String
    let displayName: String

    func writeJSON(to buffer: inout ByteBuffer) {
        buffer.writeStaticString(#"{"email":"#)
        JSONString.write(email, to: &buffer)
        buffer.writeStaticString(#","displayName":"#)
        JSONString.write(displayName, to: &buffer)
        buffer.writeStaticString("}")
    }
}

/// `POST /rest/api/3/user`: `products: []` means no product access, so no licence and no invitation.
struct UserCreateBody: Encodable, HandWrittenJSON {
    let emailAddress: String
    let displayName: String
    let products: [String]

    func writeJSON(to buffer: inout ByteBuffer) {
        buffer.writeStaticString(#"{"emailAddress":"#)
        JSONString.write(emailAddress, to: &buffer)
        buffer.writeStaticString(#","displayName":"#)
        JSONString.write(displayName, to: &buffer)
        buffer.writeStaticString(#","products":["#)
        for (index, product) in products.enumerated() {
            if index > 0 { buffer.writeStaticString(",") }
            JSONString.write(product, to: &buffer)
        }
        buffer.writeStaticString("]}")
    }
}

/// A request body the adapter writes itself: the creation bodies, sent once per account, where
/// `JSONEncoder` would cost more than the rest of the call's own work.
protocol HandWrittenJSON {
    /// Appends the body's JSON text.
    func writeJSON(to buffer: inout ByteBuffer)
}

/// JSON string literals (RFC 8259): quotes, backslashes and control characters escaped, all other
/// text copied as UTF-8.
enum JSONString {
    /// Appends `value` as a quoted JSON string.
    static func write(_ value: String, to buffer: inout ByteBuffer) {
        buffer.writeStaticString("\"")
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): buffer.writeStaticString("\\\"")
            case UInt8(ascii: "\\"): buffer.writeStaticString("\\\\")
            case 0x0A: buffer.writeStaticString("\\n")
            case 0x0D: buffer.writeStaticString("\\r")
            case 0x09: buffer.writeStaticString("\\t")
            case 0..<0x20:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                buffer.writeStaticString("\\u00")
                buffer.writeInteger(hex[Int(byte >> 4)])
                buffer.writeInteger(hex[Int(byte & 0x0F)])
            default: buffer.writeInteger(byte)
            }
        }
        buffer.writeStaticString("\"")
    }
}

/// `POST /rest/api/3/group`.
struct GroupCreateBody: Encodable {
    let name: String
}

/// `POST /rest/api/3/group/user`.
struct GroupMemberBody: Encodable {
    let accountId: String
}

/// A user as the customer and user endpoints return it.
struct UserBody: Decodable, Equatable {
    let accountId: String
    let accountType: String?
    let emailAddress: String?
}

/// A group as the group endpoints return it.
struct GroupBody: Decodable {
    let name: String
    let groupId: String?
}

/// `GET /rest/api/3/group/bulk`: a page of groups.
struct GroupPageBody: Decodable {
    let values: [GroupBody]
}

/// `GET /rest/api/3/group/member`: Atlassian's `PageBeanUserDetails`, the fields read.
struct GroupMemberPageBody: Decodable {
    struct Member: Decodable {
        let accountId: String
    }

    let total: Int?
    let isLast: Bool?
    let values: [Member]
}

/// Either of Atlassian's error shapes: the platform's `{"errorMessages":[],"errors":{}}` or the
/// service desk's `{"errorMessage":"...","i18nErrorMessage":{...}}`.
struct ErrorBody: Decodable {
    let errorMessages: [String]?
    let errors: [String: String]?
    let errorMessage: String?

    /// Everything the site said, in one line.
    var text: String {
        var parts = errorMessages ?? []
        if let errorMessage { parts.append(errorMessage) }
        for (field, message) in (errors ?? [:]).sorted(by: { $0.key < $1.key }) {
            parts.append("\(field): \(message)")
        }
        return parts.joined(separator: "; ")
    }
}
