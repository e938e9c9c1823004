package caddymodule

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math"

	"github.com/advcaptcha/advcaptcha/trajectory"
)

// The slide's target: a slot drawn at a random place on the track, which
// the drag has to end on. The page shows the image stretched over the
// handle's travel, so the slot's centre at share t of the image's width is
// where the handle's centre is after moving t of its travel.

// Size of the track image; the page stretches it to the travel.
const (
	slideImageW = 1000
	slideImageH = 48
	// slotHalfW is half the slot's width in image pixels: about the
	// handle's width on a desktop track.
	slotHalfW = 50
)

var (
	slotEdge = color.NRGBA{0x77, 0x77, 0x77, 0xff}
	slotFill = color.NRGBA{0xff, 0xff, 0xff, 0xb0}
	// slotMark is the slot's centre line.
	slotMark = color.NRGBA{0x3a, 0x3a, 0x3a, 0xff}
)

// renderSlideTarget draws the track image with the slot centred at share
// target of its width.
func renderSlideTarget(target float64) ([]byte, error) {
	img := image.NewNRGBA(image.Rect(0, 0, slideImageW, slideImageH))
	c := int(math.Round(target * slideImageW))
	for y := 4; y < slideImageH-4; y++ {
		for x := max(0, c-slotHalfW); x <= min(slideImageW-1, c+slotHalfW); x++ {
			edge := x-(c-slotHalfW) < 4 || (c+slotHalfW)-x < 4 || y < 8 || y >= slideImageH-8
			switch {
			case x >= c-1 && x <= c+1 && y >= 12 && y < slideImageH-12:
				img.SetNRGBA(x, y, slotMark)
			case edge:
				img.SetNRGBA(x, y, slotEdge)
			default:
				img.SetNRGBA(x, y, slotFill)
			}
		}
	}
	var b bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&b, img); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// onTarget reports whether a drag over travel CSS pixels ended on the
// slot at share target of it: within the slot (half a handle) and a
// little more, so a person's release need not be exact.
func onTarget(t trajectory.Trajectory, target, travel float64) bool {
	if len(t) == 0 {
		return false
	}
	end := min(max(t[len(t)-1].X-t[0].X, 0), travel)
	return math.Abs(end-target*travel) <= max(slotTolerance, slotToleranceShare*travel)
}

// How far from the slot's centre a drag may end, in CSS pixels: the
// larger of a fixed margin and a share of the travel.
const (
	slotTolerance      = 14
	slotToleranceShare = 0.06
)
