package coap

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/causeway/causeway/bridge"
)

// CoAP Content-Format numbers this package knows (RFC 7252 §12.3, RFC 8428).
const (
	FormatNone      = -1  // no Content-Format option
	FormatText      = 0   // text/plain;charset=utf-8
	FormatJSON      = 50  // application/json
	FormatCBOR      = 60  // application/cbor
	FormatSenMLJSON = 110 // application/senml+json
	FormatSenMLCBOR = 112 // application/senml+cbor
)

// DefaultPoint names a bare value posted to /{device} when the caller does
// not choose another name.
const DefaultPoint = "value"

// The kinds of DecodeError; test with errors.Is.
var (
	// ErrNotFound: the path is not /{device} or /{device}/{point} (CoAP 4.04).
	ErrNotFound = errors.New("not found")
	// ErrBadName: a device or point name breaks the naming rules (4.00).
	ErrBadName = errors.New("bad name")
	// ErrBadPayload: the payload is malformed for its format (4.00).
	ErrBadPayload = errors.New("bad payload")
	// ErrUnsupportedFormat: the Content-Format is not one this package
	// decodes (4.15).
	ErrUnsupportedFormat = errors.New("unsupported content format")
)

// DecodeError is a decoding failure. Error returns the diagnostic alone,
// fit to be sent back to the device; Unwrap returns its kind (ErrNotFound,
// ErrBadName, ErrBadPayload or ErrUnsupportedFormat).
type DecodeError struct {
	Kind error
	Msg  string
}

func (e *DecodeError) Error() string { return e.Msg }
func (e *DecodeError) Unwrap() error { return e.Kind }

func payloadErrorf(format string, args ...any) error {
	return &DecodeError{Kind: ErrBadPayload, Msg: fmt.Sprintf(format, args...)}
}

func nameError(err error) error {
	return &DecodeError{Kind: ErrBadName, Msg: err.Error()}
}

// Reading is the points of one device at one time: one frame.
type Reading struct {
	Time   time.Time
	Points []bridge.Point
}

// format is how one Content-Format is decoded. Exactly one of values and
// senml is set. Adding a format is one function producing points or SenML
// records, and one case in lookupFormat.
type format struct {
	name string
	// values decodes a payload into points (names not yet checked);
	// object reports a map/object payload (refused on a point path), as
	// opposed to one bare value named bare.
	values func(payload []byte, bare string) (points []bridge.Point, object bool, err error)
	// senml decodes a SenML pack into its records, unresolved.
	senml func(payload []byte) ([]senmlRecord, error)
}

func lookupFormat(cf int, payload []byte) (format, error) {
	switch cf {
	case FormatNone:
		if b := trimSpace(payload); len(b) > 0 && (b[0] == '{' || b[0] == '[') {
			return format{name: "application/json", values: decodeJSONValues}, nil
		}
		return format{name: "text/plain", values: decodeText}, nil
	case FormatText:
		return format{name: "text/plain", values: decodeText}, nil
	case FormatJSON:
		return format{name: "application/json", values: decodeJSONValues}, nil
	case FormatCBOR:
		return format{name: "application/cbor", values: decodeCBORValues}, nil
	case FormatSenMLJSON:
		return format{name: "application/senml+json", senml: decodeSenMLJSON}, nil
	case FormatSenMLCBOR:
		return format{name: "application/senml+cbor", senml: decodeSenMLCBOR}, nil
	}
	return format{}, &DecodeError{Kind: ErrUnsupportedFormat, Msg: fmt.Sprintf(
		"unsupported Content-Format %d; use 0 (text/plain), 50 (application/json), 60 (application/cbor), 110 (application/senml+json) or 112 (application/senml+cbor)", cf)}
}

// Decode decodes one request: the device and point named by path
// ("/{device}" or "/{device}/{point}"), the payload by contentFormat
// (FormatNone when the request has none). A bare value posted to /{device}
// is the point defaultPoint ("value" when empty). The time is now, or the
// SenML time. A SenML pack whose records carry several different times is
// several readings: Decode refuses it, DecodeAll returns them all.
//
// Errors are *DecodeError; errors.Is tells the kind (ErrNotFound,
// ErrBadName, ErrBadPayload, ErrUnsupportedFormat).
func Decode(path string, contentFormat int, payload []byte, defaultPoint string, now time.Time) (device string, t time.Time, points []bridge.Point, err error) {
	device, readings, err := DecodeAll(path, contentFormat, payload, defaultPoint, now)
	if err != nil {
		return "", time.Time{}, nil, err
	}
	if len(readings) != 1 {
		return "", time.Time{}, nil, payloadErrorf("SenML records carry %d different times; use DecodeAll", len(readings))
	}
	return device, readings[0].Time, readings[0].Points, nil
}

// DecodeAll is Decode for payloads that may hold readings at several times
// (a SenML time series). Readings are sorted by time, oldest first; each
// holds at least one point.
func DecodeAll(path string, contentFormat int, payload []byte, defaultPoint string, now time.Time) (device string, readings []Reading, err error) {
	segments, err := splitPath(path)
	if err != nil {
		return "", nil, err
	}
	return decodeSegments(segments, contentFormat, payload, defaultPoint, now)
}

// splitPath splits "/a/b" into its segments, refusing other shapes.
func splitPath(path string) ([]string, error) {
	p := strings.TrimPrefix(path, "/")
	if p == "" {
		return nil, &DecodeError{Kind: ErrNotFound, Msg: "no device in path; post to /{device} or /{device}/{point}"}
	}
	segments := strings.Split(p, "/")
	if len(segments) > 2 {
		return nil, &DecodeError{Kind: ErrNotFound, Msg: fmt.Sprintf("path %q has %d segments; post to /{device} or /{device}/{point}", path, len(segments))}
	}
	return segments, nil
}

// checkSegments checks the shape and names of a request path.
func checkSegments(segments []string) (device, point string, err error) {
	if len(segments) == 0 {
		return "", "", &DecodeError{Kind: ErrNotFound, Msg: "no device in path; post to /{device} or /{device}/{point}"}
	}
	if len(segments) > 2 {
		return "", "", &DecodeError{Kind: ErrNotFound, Msg: fmt.Sprintf("path has %d segments; post to /{device} or /{device}/{point}", len(segments))}
	}
	if segments[0] == ".well-known" {
		return "", "", &DecodeError{Kind: ErrNotFound, Msg: "not a data path"}
	}
	device = segments[0]
	if err := ValidDeviceName(device); err != nil {
		return "", "", nameError(err)
	}
	if len(segments) == 2 {
		point = segments[1]
		if err := ValidPointName(point); err != nil {
			return "", "", nameError(err)
		}
	}
	return device, point, nil
}

func decodeSegments(segments []string, contentFormat int, payload []byte, defaultPoint string, now time.Time) (string, []Reading, error) {
	device, pathPoint, err := checkSegments(segments)
	if err != nil {
		return "", nil, err
	}
	bare := pathPoint
	if bare == "" {
		bare = defaultPoint
		if bare == "" {
			bare = DefaultPoint
		}
		if err := ValidPointName(bare); err != nil {
			return "", nil, nameError(fmt.Errorf("default point: %w", err))
		}
	}
	f, err := lookupFormat(contentFormat, payload)
	if err != nil {
		return "", nil, err
	}
	if f.senml != nil {
		records, err := f.senml(payload)
		if err != nil {
			return "", nil, err
		}
		readings, err := resolveSenML(records, device, pathPoint, bare, now)
		if err != nil {
			return "", nil, err
		}
		return device, readings, nil
	}
	points, object, err := f.values(payload, bare)
	if err != nil {
		return "", nil, err
	}
	if object && pathPoint != "" {
		return "", nil, payloadErrorf("an object cannot be posted to the point path /%s/%s: post a bare value there, or the object to /%s", device, pathPoint, device)
	}
	if len(points) == 0 {
		return "", nil, payloadErrorf("empty object: no points")
	}
	for _, p := range points {
		if err := ValidPointName(p.Name); err != nil {
			return "", nil, nameError(err)
		}
	}
	if err := checkDuplicates(points); err != nil {
		return "", nil, err
	}
	return device, []Reading{{Time: now, Points: points}}, nil
}

// checkDuplicates refuses two points with one name in a reading.
func checkDuplicates(points []bridge.Point) error {
	if len(points) <= 8 {
		for i := 1; i < len(points); i++ {
			for j := range i {
				if points[i].Name == points[j].Name {
					return payloadErrorf("duplicate point %q", points[i].Name)
				}
			}
		}
		return nil
	}
	seen := make(map[string]struct{}, len(points))
	for _, p := range points {
		if _, dup := seen[p.Name]; dup {
			return payloadErrorf("duplicate point %q", p.Name)
		}
		seen[p.Name] = struct{}{}
	}
	return nil
}

// decodeText decodes text/plain: surrounding whitespace is trimmed, then a
// JSON number is a number (an integer when it has no fraction or exponent
// and fits in int64), true/false a bool, anything else a string.
func decodeText(payload []byte, bare string) ([]bridge.Point, bool, error) {
	if !utf8.Valid(payload) {
		return nil, false, payloadErrorf("text payload is not valid UTF-8")
	}
	b := trimSpace(payload)
	var v bridge.Value
	switch string(b) {
	case "true":
		v = bridge.Bool(true)
	case "false":
		v = bridge.Bool(false)
	default:
		v = bridge.String(string(b))
		if len(b) > 0 && (b[0] == '-' || (b[0] >= '0' && b[0] <= '9')) {
			s := jsonScanner{data: b}
			if lit, isInt, err := s.parseNumber(); err == nil && s.pos == len(b) {
				n, ok := makeNumber(lit, isInt)
				if !ok {
					return nil, false, payloadErrorf("number %.40s is out of range", b)
				}
				v = n.value()
			}
		}
	}
	return []bridge.Point{{Name: bare, Value: v}}, false, nil
}

func trimSpace(b []byte) []byte {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// sortReadings orders readings by time, keeping the pack order for equal
// times.
func sortReadings(r []Reading) {
	sort.SliceStable(r, func(i, j int) bool { return r[i].Time.Before(r[j].Time) })
}
