package cloudevents

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// CloudEvents attribute names may hold only lowercase letters and digits.
// A metadata key becomes an extension attribute name byte by byte: a to y
// and 0 to 9 stay, any other byte (also z) becomes z and two lowercase hex
// digits ("correlation_id" → "correlationz5fid", "Name" → "z4eame"); the
// empty key becomes "zz", and a name that would be one of the spec's own
// attributes has its first byte escaped ("id" → "z69d"). The mapping is
// one to one, so every key comes back.

// contextAttributes are the attribute names the CloudEvents spec (1.0)
// defines for the JSON format.
var contextAttributes = map[string]bool{
	"specversion": true, "id": true, "source": true, "type": true, "datacontenttype": true,
	"dataschema": true, "subject": true, "time": true, "data": true, "data_base64": true,
}

// AttributeName is the extension attribute name of metadata key key.
func AttributeName(key string) string {
	if key == "" {
		return "zz"
	}
	var b strings.Builder
	b.Grow(len(key) + 8)
	for i := 0; i < len(key); i++ {
		c := key[i]
		if 'a' <= c && c <= 'y' || '0' <= c && c <= '9' {
			b.WriteByte(c)
			continue
		}
		const hex = "0123456789abcdef"
		b.WriteByte('z')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	}
	name := b.String()
	if contextAttributes[name] {
		return "z" + strconv.FormatUint(uint64(name[0]), 16) + name[1:]
	}
	return name
}

// MetadataKey inverts AttributeName. A name it never writes (from
// another producer: "zoo") is kept as the key.
func MetadataKey(name string) string {
	if name == "zz" {
		return ""
	}
	if !strings.Contains(name, "z") {
		return name
	}
	b := make([]byte, 0, len(name))
	for i := 0; i < len(name); i++ {
		if name[i] != 'z' {
			b = append(b, name[i])
			continue
		}
		if i+2 >= len(name) {
			return name
		}
		v, err := strconv.ParseUint(name[i+1:i+3], 16, 8)
		if err != nil || name[i+1] >= 'A' && name[i+1] <= 'F' || name[i+2] >= 'A' && name[i+2] <= 'F' {
			return name
		}
		b = append(b, byte(v))
		i += 2
	}
	if !utf8.Valid(b) || AttributeName(string(b)) != name {
		return name // not one of ours: "z61" is written as "a"
	}
	return string(b)
}
