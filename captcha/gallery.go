package captcha

import (
	"image"
	"image/color"
	"image/draw"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Gallery lays captchas out on a contact sheet: each image scaled up by
// zoom (nearest neighbour, so pixels stay visible) with its text below, in
// cols columns — for people to look at a style.
func Gallery(caps []*Captcha, cols, zoom int) *image.Gray {
	if len(caps) == 0 || cols < 1 || zoom < 1 {
		return image.NewGray(image.Rect(0, 0, 1, 1))
	}
	cw, ch := caps[0].Image.Bounds().Dx()*zoom, caps[0].Image.Bounds().Dy()*zoom
	const pad, label = 8, 16
	rows := (len(caps) + cols - 1) / cols
	sheet := image.NewGray(image.Rect(0, 0, cols*(cw+pad)+pad, rows*(ch+label+pad)+pad))
	draw.Draw(sheet, sheet.Bounds(), image.NewUniform(color.Gray{Y: 235}), image.Point{}, draw.Src)
	for k, c := range caps {
		x0 := pad + (k%cols)*(cw+pad)
		y0 := pad + (k/cols)*(ch+label+pad)
		b := c.Image.Bounds()
		for y := 0; y < ch; y++ {
			for x := 0; x < cw; x++ {
				sheet.SetGray(x0+x, y0+y, c.Image.GrayAt(b.Min.X+x/zoom, b.Min.Y+y/zoom))
			}
		}
		d := font.Drawer{Dst: sheet, Src: image.NewUniform(color.Gray{Y: 20}), Face: basicfont.Face7x13,
			Dot: fixed.P(x0, y0+ch+13)}
		d.DrawString(c.Text)
	}
	return sheet
}
