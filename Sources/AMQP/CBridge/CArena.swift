import CRabbitMQ
import Glibc

/// Owns the C memory behind the tables and strings of one outgoing method or message.
///
/// librabbitmq serialises a frame during the call that sends it, so everything allocated here
/// can be freed as soon as that call returns: ``reset()`` does it, and the arena is reused.
final class CArena {
    private var allocations: [UnsafeMutableRawPointer] = []

    deinit { reset() }

    /// Frees everything handed out since the last reset.
    func reset() {
        for pointer in allocations { free(pointer) }
        allocations.removeAll(keepingCapacity: true)
    }

    private func allocate(_ count: Int) -> UnsafeMutableRawPointer {
        let pointer = malloc(max(count, 1))!
        allocations.append(pointer)
        return pointer
    }

    /// Copies bytes into C memory owned by the arena.
    func bytes<C: Collection<UInt8>>(_ source: C) -> amqp_bytes_t {
        let count = source.count
        let pointer = allocate(count)
        UnsafeMutableRawBufferPointer(start: pointer, count: count).copyBytes(from: source)
        return amqp_bytes_t(len: count, bytes: pointer)
    }

    /// Copies a string's UTF-8 into C memory owned by the arena.
    func bytes(_ string: String) -> amqp_bytes_t {
        var string = string
        return string.withUTF8 { bytes($0) }
    }

    /// Builds a C field table; its entries live until the next reset.
    func table(_ table: AMQPTable) -> amqp_table_t {
        guard !table.isEmpty else { return amqp_table_t(num_entries: 0, entries: nil) }
        let entries = allocate(MemoryLayout<amqp_table_entry_t>.stride * table.count)
            .bindMemory(to: amqp_table_entry_t.self, capacity: table.count)
        // Sorted so the bytes on the wire do not depend on dictionary order.
        for (index, (key, value)) in table.sorted(by: { $0.key < $1.key }).enumerated() {
            entries[index] = amqp_table_entry_t(key: bytes(key), value: field(value))
        }
        return amqp_table_t(num_entries: Int32(table.count), entries: entries)
    }

    private func field(_ value: AMQPFieldValue) -> amqp_field_value_t {
        var field = amqp_field_value_t()
        func kind(_ k: amqp_field_value_kind_t) { field.kind = UInt8(k.rawValue) }
        switch value {
        case .bool(let v): kind(AMQP_FIELD_KIND_BOOLEAN); field.value.boolean = v ? 1 : 0
        case .int8(let v): kind(AMQP_FIELD_KIND_I8); field.value.i8 = v
        case .uint8(let v): kind(AMQP_FIELD_KIND_U8); field.value.u8 = v
        case .int16(let v): kind(AMQP_FIELD_KIND_I16); field.value.i16 = v
        case .uint16(let v): kind(AMQP_FIELD_KIND_U16); field.value.u16 = v
        case .int32(let v): kind(AMQP_FIELD_KIND_I32); field.value.i32 = v
        case .uint32(let v): kind(AMQP_FIELD_KIND_U32); field.value.u32 = v
        case .int64(let v): kind(AMQP_FIELD_KIND_I64); field.value.i64 = v
        case .uint64(let v): kind(AMQP_FIELD_KIND_U64); field.value.u64 = v
        case .float(let v): kind(AMQP_FIELD_KIND_F32); field.value.f32 = v
        case .double(let v): kind(AMQP_FIELD_KIND_F64); field.value.f64 = v
        case .decimal(let decimals, let v):
            kind(AMQP_FIELD_KIND_DECIMAL); field.value.decimal = amqp_decimal_t(decimals: decimals, value: v)
        case .string(let v): kind(AMQP_FIELD_KIND_UTF8); field.value.bytes = bytes(v)
        case .bytes(let v): kind(AMQP_FIELD_KIND_BYTES); field.value.bytes = bytes(v)
        case .timestamp(let v): kind(AMQP_FIELD_KIND_TIMESTAMP); field.value.u64 = v
        case .table(let v): kind(AMQP_FIELD_KIND_TABLE); field.value.table = table(v)
        case .array(let values):
            kind(AMQP_FIELD_KIND_ARRAY)
            let entries = allocate(MemoryLayout<amqp_field_value_t>.stride * max(values.count, 1))
                .bindMemory(to: amqp_field_value_t.self, capacity: max(values.count, 1))
            for (index, element) in values.enumerated() { entries[index] = self.field(element) }
            field.value.array = amqp_array_t(num_entries: Int32(values.count), entries: entries)
        case .void: kind(AMQP_FIELD_KIND_VOID)
        }
        return field
    }

    /// Builds C basic properties; strings and headers live until the next reset.
    func properties(_ p: AMQPProperties) -> amqp_basic_properties_t {
        var c = amqp_basic_properties_t()
        var flags: UInt32 = 0
        func set(_ value: String?, _ flag: Int32, _ assign: (amqp_bytes_t) -> Void) {
            guard let value else { return }
            assign(bytes(value))
            flags |= UInt32(flag)
        }
        set(p.contentType, AMQP_BASIC_CONTENT_TYPE_FLAG) { c.content_type = $0 }
        set(p.contentEncoding, AMQP_BASIC_CONTENT_ENCODING_FLAG) { c.content_encoding = $0 }
        set(p.correlationId, AMQP_BASIC_CORRELATION_ID_FLAG) { c.correlation_id = $0 }
        set(p.replyTo, AMQP_BASIC_REPLY_TO_FLAG) { c.reply_to = $0 }
        set(p.expiration, AMQP_BASIC_EXPIRATION_FLAG) { c.expiration = $0 }
        set(p.messageId, AMQP_BASIC_MESSAGE_ID_FLAG) { c.message_id = $0 }
        set(p.type, AMQP_BASIC_TYPE_FLAG) { c.type = $0 }
        set(p.userId, AMQP_BASIC_USER_ID_FLAG) { c.user_id = $0 }
        set(p.appId, AMQP_BASIC_APP_ID_FLAG) { c.app_id = $0 }
        if !p.headers.isEmpty {
            c.headers = table(p.headers)
            flags |= UInt32(AMQP_BASIC_HEADERS_FLAG)
        }
        if let persistent = p.persistent {
            c.delivery_mode =
                persistent ? UInt8(AMQP_DELIVERY_PERSISTENT.rawValue) : UInt8(AMQP_DELIVERY_NONPERSISTENT.rawValue)
            flags |= UInt32(AMQP_BASIC_DELIVERY_MODE_FLAG)
        }
        if let priority = p.priority {
            c.priority = priority
            flags |= UInt32(AMQP_BASIC_PRIORITY_FLAG)
        }
        if let timestamp = p.timestamp {
            c.timestamp = timestamp
            flags |= UInt32(AMQP_BASIC_TIMESTAMP_FLAG)
        }
        c._flags = flags
        return c
    }
}

/// Reading C values into Swift values; every result is a copy, safe after the C memory is released.
enum CDecode {
    static func string(_ b: amqp_bytes_t) -> String {
        guard b.len > 0, let pointer = b.bytes else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: pointer, count: b.len), as: UTF8.self)
    }

    static func bytes(_ b: amqp_bytes_t) -> [UInt8] {
        guard b.len > 0, let pointer = b.bytes else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: b.len))
    }

    static func table(_ t: amqp_table_t) -> AMQPTable {
        guard t.num_entries > 0, let entries = t.entries else { return [:] }
        var result = AMQPTable(minimumCapacity: Int(t.num_entries))
        for index in 0..<Int(t.num_entries) {
            result[string(entries[index].key)] = field(entries[index].value)
        }
        return result
    }

    static func field(_ f: amqp_field_value_t) -> AMQPFieldValue {
        switch UInt32(f.kind) {
        case AMQP_FIELD_KIND_BOOLEAN.rawValue: return .bool(f.value.boolean != 0)
        case AMQP_FIELD_KIND_I8.rawValue: return .int8(f.value.i8)
        case AMQP_FIELD_KIND_U8.rawValue: return .uint8(f.value.u8)
        case AMQP_FIELD_KIND_I16.rawValue: return .int16(f.value.i16)
        case AMQP_FIELD_KIND_U16.rawValue: return .uint16(f.value.u16)
        case AMQP_FIELD_KIND_I32.rawValue: return .int32(f.value.i32)
        case AMQP_FIELD_KIND_U32.rawValue: return .uint32(f.value.u32)
        case AMQP_FIELD_KIND_I64.rawValue: return .int64(f.value.i64)
        case AMQP_FIELD_KIND_U64.rawValue: return .uint64(f.value.u64)
        case AMQP_FIELD_KIND_F32.rawValue: return .float(f.value.f32)
        case AMQP_FIELD_KIND_F64.rawValue: return .double(f.value.f64)
        case AMQP_FIELD_KIND_DECIMAL.rawValue:
            return .decimal(decimals: f.value.decimal.decimals, value: f.value.decimal.value)
        case AMQP_FIELD_KIND_UTF8.rawValue: return .string(string(f.value.bytes))
        case AMQP_FIELD_KIND_BYTES.rawValue: return .bytes(bytes(f.value.bytes))
        case AMQP_FIELD_KIND_TIMESTAMP.rawValue: return .timestamp(f.value.u64)
        case AMQP_FIELD_KIND_TABLE.rawValue: return .table(table(f.value.table))
        case AMQP_FIELD_KIND_ARRAY.rawValue:
            let array = f.value.array
            guard array.num_entries > 0, let entries = array.entries else { return .array([]) }
            return .array((0..<Int(array.num_entries)).map { field(entries[$0]) })
        default: return .void
        }
    }

    static func properties(_ c: amqp_basic_properties_t) -> AMQPProperties {
        let flags = c._flags
        func has(_ flag: Int32) -> Bool { flags & UInt32(flag) != 0 }
        func text(_ flag: Int32, _ b: amqp_bytes_t) -> String? { has(flag) ? string(b) : nil }
        var p = AMQPProperties()
        p.contentType = text(AMQP_BASIC_CONTENT_TYPE_FLAG, c.content_type)
        p.contentEncoding = text(AMQP_BASIC_CONTENT_ENCODING_FLAG, c.content_encoding)
        p.correlationId = text(AMQP_BASIC_CORRELATION_ID_FLAG, c.correlation_id)
        p.replyTo = text(AMQP_BASIC_REPLY_TO_FLAG, c.reply_to)
        p.expiration = text(AMQP_BASIC_EXPIRATION_FLAG, c.expiration)
        p.messageId = text(AMQP_BASIC_MESSAGE_ID_FLAG, c.message_id)
        p.type = text(AMQP_BASIC_TYPE_FLAG, c.type)
        p.userId = text(AMQP_BASIC_USER_ID_FLAG, c.user_id)
        p.appId = text(AMQP_BASIC_APP_ID_FLAG, c.app_id)
        if has(AMQP_BASIC_HEADERS_FLAG) { p.headers = table(c.headers) }
        if has(AMQP_BASIC_DELIVERY_MODE_FLAG) {
            p.persistent = c.delivery_mode == UInt8(AMQP_DELIVERY_PERSISTENT.rawValue)
        }
        if has(AMQP_BASIC_PRIORITY_FLAG) { p.priority = c.priority }
        if has(AMQP_BASIC_TIMESTAMP_FLAG) { p.timestamp = c.timestamp }
        return p
    }
}
