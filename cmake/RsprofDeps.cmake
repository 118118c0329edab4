# Finds each external dependency and, when one is missing, names the Debian package that provides it.
find_package(PkgConfig QUIET)

# rsprof_require_lib(VAR HEADER LIBRARY PACKAGE): locate a header and a library or stop with an install hint.
function(rsprof_require_lib var header library package)
  find_path(${var}_INCLUDE_DIR ${header})
  find_library(${var}_LIBRARY NAMES ${library})
  if(NOT ${var}_INCLUDE_DIR OR NOT ${var}_LIBRARY)
    message(FATAL_ERROR "rsprof needs ${header} / lib${library}: install the Debian package '${package}' "
                        "(or run scripts/install-deps)")
  endif()
  set(${var}_INCLUDE_DIR ${${var}_INCLUDE_DIR} PARENT_SCOPE)
  set(${var}_LIBRARY ${${var}_LIBRARY} PARENT_SCOPE)
endfunction()

# Each dependency becomes an imported target so the modules link it by name.
function(rsprof_import target var)
  add_library(${target} INTERFACE IMPORTED GLOBAL)
  set_target_properties(${target} PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${${var}_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES "${${var}_LIBRARY};${ARGN}")
endfunction()

find_package(Threads REQUIRED)

rsprof_require_lib(UV uv.h uv libuv1-dev)
rsprof_import(rsprof::uv UV Threads::Threads ${CMAKE_DL_LIBS})

rsprof_require_lib(MBEDTLS mbedtls/ssl.h mbedtls libmbedtls-dev)
rsprof_require_lib(MBEDX509 mbedtls/x509_crt.h mbedx509 libmbedtls-dev)
rsprof_require_lib(MBEDCRYPTO mbedtls/aes.h mbedcrypto libmbedtls-dev)
add_library(rsprof::mbedtls INTERFACE IMPORTED GLOBAL)
set_target_properties(rsprof::mbedtls PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES "${MBEDTLS_INCLUDE_DIR}"
  INTERFACE_LINK_LIBRARIES "${MBEDTLS_LIBRARY};${MBEDX509_LIBRARY};${MBEDCRYPTO_LIBRARY}")

if(RSPROF_BUILD_COLLECTOR)
  rsprof_require_lib(ELF libelf.h elf libelf-dev)
  rsprof_require_lib(ZLIB zlib.h z zlib1g-dev)
  rsprof_import(rsprof::elf ELF ${ZLIB_LIBRARY})

  rsprof_require_lib(DWARF libdwarf/libdwarf.h dwarf libdwarf-dev)
  rsprof_import(rsprof::dwarf DWARF rsprof::elf ${ZLIB_LIBRARY})

  rsprof_require_lib(IBERTY libiberty/demangle.h iberty libiberty-dev)
  rsprof_import(rsprof::iberty IBERTY)

  rsprof_require_lib(PROTOBUFC protobuf-c/protobuf-c.h protobuf-c libprotobuf-c-dev)
  rsprof_import(rsprof::protobuf-c PROTOBUFC)
  find_program(PROTOC_C NAMES protoc-c protoc-gen-c)
  if(NOT PROTOC_C)
    message(FATAL_ERROR "rsprof needs the protoc-c compiler: install the Debian package 'protobuf-c-compiler' "
                        "(or run scripts/install-deps)")
  endif()
endif()
