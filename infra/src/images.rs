//! Uploaded images made safe to serve: the real type sniffed from the bytes (never the
//! header), the size and the pixel count bounded before anything is decoded, the picture
//! re-encoded (which drops EXIF and every other metadata: a villager's photo carries the GPS
//! point of their home), and a thumbnail made. CPU-bound: call it off the async workers.

use image::{DynamicImage, ImageFormat, ImageReader};
use std::io::Cursor;
use yunlian_domain::Error;

/// The largest upload taken (8 MiB).
pub const MAX_BYTES: usize = 8 * 1024 * 1024;
/// The most pixels a picture may have (a 40-megapixel phone camera), and the longest side.
pub const MAX_PIXELS: u64 = 40_000_000;
pub const MAX_SIDE: u32 = 10_000;
/// A thumbnail fits in this square.
pub const THUMB_SIDE: u32 = 320;

/// A checked picture, re-encoded, with its thumbnail.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub content_type: &'static str,
    pub width: u32,
    pub height: u32,
    pub full: Vec<u8>,
    pub thumb: Vec<u8>,
}

fn refused(code: &'static str) -> Error {
    Error::Unprocessable(code)
}

fn encode(img: &DynamicImage, format: ImageFormat) -> Result<Vec<u8>, Error> {
    let mut out = Cursor::new(Vec::new());
    let img = match format {
        // JPEG has no alpha channel.
        ImageFormat::Jpeg => DynamicImage::ImageRgb8(img.to_rgb8()),
        _ => img.clone(),
    };
    img.write_to(&mut out, format)
        .map_err(|e| Error::Internal(format!("encode: {e}")))?;
    Ok(out.into_inner())
}

/// Checks and re-encodes an upload: `not_an_image` (not JPEG, PNG or WebP by its bytes, or
/// undecodable), `image_too_large` (over [`MAX_BYTES`]), `image_too_many_pixels`.
pub fn prepare(bytes: &[u8]) -> Result<Prepared, Error> {
    if bytes.len() > MAX_BYTES {
        return Err(refused("image_too_large"));
    }
    let format = image::guess_format(bytes).map_err(|_| refused("not_an_image"))?;
    let (out_format, content_type) = match format {
        ImageFormat::Jpeg | ImageFormat::WebP => (ImageFormat::Jpeg, "image/jpeg"),
        ImageFormat::Png => (ImageFormat::Png, "image/png"),
        _ => return Err(refused("not_an_image")),
    };
    let reader = || {
        let mut r = ImageReader::with_format(Cursor::new(bytes), format);
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(MAX_SIDE);
        limits.max_image_height = Some(MAX_SIDE);
        limits.max_alloc = Some(MAX_PIXELS * 4 + 64 * 1024 * 1024);
        r.limits(limits);
        r
    };
    // The header alone first: a decompression bomb is refused before it is decoded.
    let (w, h) = reader().into_dimensions().map_err(|e| match e {
        image::ImageError::Limits(_) => refused("image_too_many_pixels"),
        _ => refused("not_an_image"),
    })?;
    if u64::from(w) * u64::from(h) > MAX_PIXELS || w > MAX_SIDE || h > MAX_SIDE {
        return Err(refused("image_too_many_pixels"));
    }
    let img = reader().decode().map_err(|e| match e {
        image::ImageError::Limits(_) => refused("image_too_many_pixels"),
        _ => refused("not_an_image"),
    })?;
    let full = encode(&img, out_format)?;
    let thumb = encode(&img.thumbnail(THUMB_SIDE, THUMB_SIDE), out_format)?;
    Ok(Prepared {
        content_type,
        width: w,
        height: h,
        full,
        thumb,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img =
            DynamicImage::ImageRgb8(image::RgbImage::from_pixel(w, h, image::Rgb([200, 30, 30])));
        encode(&img, ImageFormat::Jpeg).unwrap_or_default()
    }

    /// A JPEG with an EXIF segment (APP1) carrying a GPS tag name, as a phone camera writes.
    pub fn jpeg_with_exif(w: u32, h: u32) -> Vec<u8> {
        let plain = jpeg(w, h);
        let mut exif = b"Exif\0\0MM\0*GPSLatitude 31.05N GPSLongitude 119.42E".to_vec();
        let len = (exif.len() + 2) as u16;
        let mut out = plain[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&len.to_be_bytes());
        out.append(&mut exif);
        out.extend_from_slice(&plain[2..]);
        out
    }

    #[test]
    fn a_photo_loses_its_exif_and_gets_a_thumbnail() {
        let raw = jpeg_with_exif(1200, 800);
        assert!(raw.windows(4).any(|w| w == b"Exif"));
        let p = prepare(&raw).expect("prepared");
        assert_eq!(
            (p.content_type, p.width, p.height),
            ("image/jpeg", 1200, 800)
        );
        assert!(!p.full.windows(4).any(|w| w == b"Exif"));
        assert!(!p.full.windows(3).any(|w| w == b"GPS"));
        let t = image::load_from_memory(&p.thumb).expect("thumb");
        assert_eq!((t.width(), t.height()), (320, 213));
    }

    #[test]
    fn what_is_not_a_picture_or_too_big_is_refused_by_code() {
        let code = |r: Result<Prepared, Error>| match r {
            Err(Error::Unprocessable(c)) => c,
            _ => "ok",
        };
        assert_eq!(code(prepare(b"GIF89a not quite")), "not_an_image");
        assert_eq!(code(prepare(b"%PDF-1.7 a tender")), "not_an_image");
        let mut truncated = jpeg(64, 64);
        truncated.truncate(40);
        assert_eq!(code(prepare(&truncated)), "not_an_image");
        assert_eq!(code(prepare(&vec![0xFF; MAX_BYTES + 1])), "image_too_large");
        // A 12,000-pixel-wide strip is small in bytes and too wide to decode.
        let strip = DynamicImage::ImageRgb8(image::RgbImage::new(12_000, 1));
        let png = encode(&strip, ImageFormat::Png).unwrap_or_default();
        assert_eq!(code(prepare(&png)), "image_too_many_pixels");
    }
}
