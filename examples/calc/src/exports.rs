//! The lowered exports, by the core names wit-component looks for (its legacy names, as the ICE
//! SDK's `run`): a world function as `<name>`, an interface function as
//! `<namespace>:<package>/<interface>@<version>#<name>`, its post-return as `cabi_post_<that name>`.
//!
//! Flattening (canonical ABI, MAX_FLAT_PARAMS 16, MAX_FLAT_RESULTS 1): a string or list is (ptr, len);
//! `option<bool>` is (is-some, value); a variant is its discriminant then the joined payload slots;
//! flags with at most 8 members and enums are one i32. A result of more than one flat value goes
//! to the return area (abi.rs), laid out with each field aligned to its own alignment.

use crate::abi::{self, free_string, put_f64, put_string, put_u32, put_u64, ret_area, take_list, take_string};
use crate::calc;
use crate::geometry::{self, Point, Shape, Unit};

#[export_name = "add"]
extern "C" fn add(a: u32, b: u32) -> u32 {
    calc::add(a, b)
}

/// result<s64, string>: tag @0, payload @8 (align 8): ok s64 @8; err ptr @8, len @12.
#[export_name = "divide"]
extern "C" fn divide(a: i64, b: i64) -> *mut u8 {
    let area = ret_area();
    match calc::divide(a, b) {
        Ok(q) => put_u64(area, 8, q as u64),
        Err(message) => {
            area[0] = 1;
            put_string(area, 8, message);
        }
    }
    area.as_mut_ptr()
}

#[export_name = "cabi_post_divide"]
unsafe extern "C" fn post_divide(ret: *mut u8) {
    if unsafe { *ret } == 1 {
        unsafe { free_string(ret, 8) };
    }
}

/// string: ptr @0, len @4.
#[export_name = "greet"]
unsafe extern "C" fn greet(name: *mut u8, name_len: usize, excited_is_some: u32, excited: u32) -> *mut u8 {
    let name = unsafe { take_string(name, name_len) };
    let excited = match excited_is_some {
        0 => None,
        1 => Some(excited != 0),
        _ => abi::invalid_discriminant(),
    };
    let area = ret_area();
    put_string(area, 0, calc::greet(&name, excited));
    area.as_mut_ptr()
}

#[export_name = "cabi_post_greet"]
unsafe extern "C" fn post_greet(ret: *mut u8) {
    unsafe { free_string(ret, 0) };
}

/// tuple<u32, f64, f64>: u32 @0, f64 @8, f64 @16. Nothing to free afterwards.
#[export_name = "stats"]
unsafe extern "C" fn stats(xs: *mut f64, len: usize) -> *mut u8 {
    let xs = unsafe { take_list(xs, len) };
    let (count, mean, max) = calc::stats(&xs);
    let area = ret_area();
    put_u32(area, 0, count);
    put_f64(area, 8, mean);
    put_f64(area, 16, max);
    area.as_mut_ptr()
}

/// option<tuple<char, u32>>: tag @0, char @4, u32 @8.
#[export_name = "first-char"]
unsafe extern "C" fn first_char(s: *mut u8, len: usize) -> *mut u8 {
    let s = unsafe { take_string(s, len) };
    let area = ret_area();
    if let Some((c, code)) = calc::first_char(&s) {
        area[0] = 1;
        put_u32(area, 4, c as u32);
        put_u32(area, 8, code);
    }
    area.as_mut_ptr()
}

/// One flat u64 result: returned directly.
#[export_name = "checksum"]
unsafe extern "C" fn checksum(data: *mut u8, len: usize) -> u64 {
    let data = unsafe { take_list(data, len) };
    calc::checksum(&data)
}

/// result<_, string>: tag @0, err ptr @4, len @8.
#[export_name = "remember"]
unsafe extern "C" fn remember(key: *mut u8, key_len: usize, value: *mut u8, value_len: usize) -> *mut u8 {
    let key = unsafe { take_string(key, key_len) };
    let value = unsafe { take_string(value, value_len) };
    let area = ret_area();
    if let Err(message) = calc::remember(&key, &value) {
        area[0] = 1;
        put_string(area, 4, message);
    }
    area.as_mut_ptr()
}

#[export_name = "cabi_post_remember"]
unsafe extern "C" fn post_remember(ret: *mut u8) {
    if unsafe { *ret } == 1 {
        unsafe { free_string(ret, 4) };
    }
}

/// option<string>: tag @0, ptr @4, len @8.
#[export_name = "recall"]
unsafe extern "C" fn recall(key: *mut u8, key_len: usize) -> *mut u8 {
    let key = unsafe { take_string(key, key_len) };
    let area = ret_area();
    if let Some(value) = calc::recall(&key) {
        area[0] = 1;
        put_string(area, 4, value);
    }
    area.as_mut_ptr()
}

#[export_name = "cabi_post_recall"]
unsafe extern "C" fn post_recall(ret: *mut u8) {
    if unsafe { *ret } == 1 {
        unsafe { free_string(ret, 4) };
    }
}

/// shape flattens to (discriminant, f64 × 4): circle's radius is the first slot, rect's corners
/// fill all four (x1, y1, x2, y2), empty uses none. One f64 result: returned directly.
#[export_name = "example:calc/geometry@0.1.0#area"]
extern "C" fn area(tag: u32, a: f64, b: f64, c: f64, d: f64) -> f64 {
    let shape = match tag {
        0 => Shape::Circle(a),
        1 => Shape::Rect(Point { x: a, y: b }, Point { x: c, y: d }),
        2 => Shape::Empty,
        _ => abi::invalid_discriminant(),
    };
    geometry::area(&shape)
}

/// option<point>: tag @0, x @8, y @16.
#[export_name = "example:calc/geometry@0.1.0#centroid"]
unsafe extern "C" fn centroid(points: *mut Point, len: usize) -> *mut u8 {
    let points = unsafe { take_list(points, len) };
    let area = ret_area();
    if let Some(p) = geometry::centroid(&points) {
        area[0] = 1;
        put_f64(area, 8, p.x);
        put_f64(area, 16, p.y);
    }
    area.as_mut_ptr()
}

/// flags style is one i32 of which only the three low bits are members (the rest are ignored, as
/// lifting flags does); unit is its case index. The string: ptr @0, len @4.
#[export_name = "example:calc/geometry@0.1.0#describe-style"]
extern "C" fn describe_style(style: u32, unit: u32) -> *mut u8 {
    let unit = match unit {
        0 => Unit::Metric,
        1 => Unit::Imperial,
        _ => abi::invalid_discriminant(),
    };
    let area = ret_area();
    put_string(area, 0, geometry::describe_style((style & 0b111) as u8, unit));
    area.as_mut_ptr()
}

#[export_name = "cabi_post_example:calc/geometry@0.1.0#describe-style"]
unsafe extern "C" fn post_describe_style(ret: *mut u8) {
    unsafe { free_string(ret, 0) };
}
