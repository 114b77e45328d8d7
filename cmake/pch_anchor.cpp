// The translation unit that builds gt_pch's precompiled header (cmake/PrecompiledHeaders.cmake);
// it defines nothing.
