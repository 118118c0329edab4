# CMake toolchain for building rsprof-agent for 64-bit Arm Linux boards with Debian's cross compiler
# (gcc-aarch64-linux-gnu) and arm64 multiarch libraries (libuv1-dev:arm64, libmbedtls-dev:arm64).
#   cmake -S . -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=deploy/toolchain-aarch64.cmake \
#         -DRSPROF_STATIC=ON -DRSPROF_BUILD_COLLECTOR=OFF -DRSPROF_BUILD_TESTS=OFF
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(RSPROF_CROSS_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${RSPROF_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${RSPROF_CROSS_TRIPLE}-g++)
set(CMAKE_LIBRARY_ARCHITECTURE ${RSPROF_CROSS_TRIPLE})
# Headers are shared between architectures in /usr/include; libraries must come from the
# architecture's multiarch directory only, never from the build machine's.
set(CMAKE_FIND_ROOT_PATH /usr/${RSPROF_CROSS_TRIPLE} /usr/lib/${RSPROF_CROSS_TRIPLE})
set(CMAKE_LIBRARY_PATH /usr/lib/${RSPROF_CROSS_TRIPLE})
set(CMAKE_IGNORE_PATH /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
# Programs built for the target run on the build machine through QEMU user mode when it is installed.
find_program(RSPROF_QEMU qemu-aarch64)
if(RSPROF_QEMU)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${RSPROF_QEMU} -L /usr/${RSPROF_CROSS_TRIPLE})
endif()
