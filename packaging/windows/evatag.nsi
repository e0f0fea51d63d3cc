; NSIS installer for evatag (64-bit Windows).
;
; Build evatag.exe first (cargo build --release; the root build.rs embeds the icon), and
; libheif's DLLs with vcpkg (vcpkg install "libheif[core,aom]:x64-windows", see
; packaging/README.md), then, from the repository root:
;
;   makensis /DVERSION=0.1.0 /DLIBHEIF_DIR=%VCPKG_ROOT%\installed\x64-windows packaging\windows\evatag.nsi
;
; Defines (all optional except VERSION, which should match Cargo.toml):
;   VERSION       product version, e.g. 0.1.0
;   VERSION_QUAD  four-part file version for the installer's own version info (VERSION.0)
;   BINARY        the executable to install (..\..\target\release\evatag.exe)
;   LIBHEIF_DIR   vcpkg's installed tree for the x64-windows triplet, which holds bin\heif.dll
;                 and the DLLs it links, and share\<port>\copyright
;                 ($%VCPKG_ROOT%\installed\x64-windows, from the environment)
;   OUTDIR        where the installer is written (..\..\target\packaging)
;   COMPRESSOR    SetCompressor's arguments (/SOLID lzma; zlib builds five times faster)
;   NO_LIBHEIF    leave libheif out (no LIBHEIF_DIR needed): a test installer, as
;                 packaging/windows/check.sh builds on Linux; evatag then reads every format
;                 but HEIC, HEIF and AVIF, and says for each such photo what is missing
; Relative paths are resolved from this script's folder.
;
; evatag.exe reads HEIC, HEIF and AVIF with heif.dll, which it loads at run time from its
; own folder. The installer puts heif.dll there with libde265.dll (HEVC, for HEIC) and
; aom.dll or dav1d.dll (AV1, for AVIF), and their licence texts in licenses\.
;
; Installs to Program Files\evatag for all users, adds a Start-menu shortcut, an entry in
; Apps & features with an uninstaller, "Open with" and Default-apps registration for
; .jpg .jpeg .png .webp .tif .tiff .bmp .gif, .heic .heif .hif .avif and the camera RAW
; extensions (.dng .cr2 .cr3 .nef .arw .raf .rw2 .orf .pef and the others listed in
; ForEachExtension), and optionally an "Open in evatag" verb on folders. It never makes
; evatag the default program for any type; Windows leaves that choice to the user.

Unicode true
; A 64-bit installer for a 64-bit program: 32-bit Windows does not start it at all.
Target amd64-unicode
ManifestDPIAware true
!ifndef COMPRESSOR
  !define COMPRESSOR "/SOLID lzma"
!endif
SetCompressor ${COMPRESSOR}

!ifndef VERSION
  !error "pass the version: makensis /DVERSION=x.y.z packaging\windows\evatag.nsi"
!endif
!ifndef VERSION_QUAD
  !define VERSION_QUAD "${VERSION}.0"
!endif
!ifndef BINARY
  !define BINARY "..\..\target\release\evatag.exe"
!endif
!ifndef NO_LIBHEIF
!ifndef LIBHEIF_DIR
  !define LIBHEIF_DIR "$%VCPKG_ROOT%\installed\x64-windows"
!endif
; The AV1 decoder (AVIF) that libheif links: aom.dll (vcpkg's libheif[aom]) or dav1d.dll.
!if /FileExists "${LIBHEIF_DIR}\bin\aom.dll"
  !define AV1_AOM
!endif
!if /FileExists "${LIBHEIF_DIR}\bin\dav1d.dll"
  !define AV1_DAV1D
!endif
!if ! /FileExists "${LIBHEIF_DIR}\bin\heif.dll"
  !error 'no heif.dll in ${LIBHEIF_DIR}\bin: run vcpkg install "libheif[core,aom]:x64-windows" and pass /DLIBHEIF_DIR=<vcpkg>\installed\x64-windows'
!endif
!ifndef AV1_AOM
  !ifndef AV1_DAV1D
    !error "no AV1 decoder (aom.dll or dav1d.dll) in ${LIBHEIF_DIR}\bin: install libheif with vcpkg's aom feature"
  !endif
!endif
!endif
!ifndef OUTDIR
  !define OUTDIR "..\..\target\packaging"
!endif

!define APP_NAME "evatag"
!define APP_ID "org.evatag.Evatag"
!define PUBLISHER "The evatag developers"
!define HOMEPAGE "https://github.com/evatag/evatag"
!define EXE "evatag.exe"
!define PROGID "${APP_ID}.Image"
!define UNINST_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\${APP_NAME}"
!define CAPABILITIES_KEY "Software\${APP_NAME}\Capabilities"

!include "MUI2.nsh"
!include "FileFunc.nsh"

Name "${APP_NAME}"
!system 'mkdir "${OUTDIR}"'
OutFile "${OUTDIR}\${APP_NAME}-${VERSION}-x64-setup.exe"
InstallDir "$PROGRAMFILES64\${APP_NAME}"
InstallDirRegKey HKLM "${UNINST_KEY}" "InstallLocation"
RequestExecutionLevel admin
BrandingText "${APP_NAME} ${VERSION}"

VIProductVersion "${VERSION_QUAD}"
VIFileVersion "${VERSION_QUAD}"
VIAddVersionKey "ProductName" "${APP_NAME}"
VIAddVersionKey "ProductVersion" "${VERSION}"
VIAddVersionKey "FileVersion" "${VERSION}"
VIAddVersionKey "FileDescription" "${APP_NAME} installer"
VIAddVersionKey "CompanyName" "${PUBLISHER}"
VIAddVersionKey "LegalCopyright" "Copyright (c) ${PUBLISHER}. MIT OR Apache-2.0."

!define MUI_ICON "..\..\assets\icons\evatag.ico"
!define MUI_UNICON "..\..\assets\icons\evatag.ico"
!define MUI_ABORTWARNING
!define MUI_COMPONENTSPAGE_NODESC
!define MUI_FINISHPAGE_RUN "$INSTDIR\${EXE}"
!define MUI_FINISHPAGE_RUN_TEXT "Start ${APP_NAME}"

!insertmacro MUI_PAGE_COMPONENTS
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES
!insertmacro MUI_LANGUAGE "English"

; Registers one extension: "Open with" lists evatag for it, and Default apps can pick it.
!macro AddExtension EXT
  WriteRegStr HKLM "Software\Classes\Applications\${EXE}\SupportedTypes" "${EXT}" ""
  WriteRegStr HKLM "Software\Classes\${EXT}\OpenWithProgids" "${PROGID}" ""
  WriteRegStr HKLM "${CAPABILITIES_KEY}\FileAssociations" "${EXT}" "${PROGID}"
!macroend

!macro RemoveExtension EXT
  DeleteRegValue HKLM "Software\Classes\${EXT}\OpenWithProgids" "${PROGID}"
  DeleteRegKey /ifempty HKLM "Software\Classes\${EXT}\OpenWithProgids"
  ; The extension's key too, where the installation made it and nothing else uses it.
  DeleteRegKey /ifempty HKLM "Software\Classes\${EXT}"
!macroend

!macro ForEachExtension MACRO
  !insertmacro ${MACRO} ".jpg"
  !insertmacro ${MACRO} ".jpeg"
  !insertmacro ${MACRO} ".png"
  !insertmacro ${MACRO} ".webp"
  !insertmacro ${MACRO} ".tif"
  !insertmacro ${MACRO} ".tiff"
  !insertmacro ${MACRO} ".bmp"
  !insertmacro ${MACRO} ".gif"
  ; HEIC, HEIF and AVIF (heif.dll, installed beside evatag.exe)
  !insertmacro ${MACRO} ".heic"
  !insertmacro ${MACRO} ".heif"
  !insertmacro ${MACRO} ".hif"
  !insertmacro ${MACRO} ".avif"
  ; Camera RAW
  !insertmacro ${MACRO} ".dng"
  !insertmacro ${MACRO} ".cr2"
  !insertmacro ${MACRO} ".cr3"
  !insertmacro ${MACRO} ".crw"
  !insertmacro ${MACRO} ".nef"
  !insertmacro ${MACRO} ".nrw"
  !insertmacro ${MACRO} ".arw"
  !insertmacro ${MACRO} ".sr2"
  !insertmacro ${MACRO} ".srf"
  !insertmacro ${MACRO} ".raf"
  !insertmacro ${MACRO} ".rw2"
  !insertmacro ${MACRO} ".rwl"
  !insertmacro ${MACRO} ".orf"
  !insertmacro ${MACRO} ".pef"
  !insertmacro ${MACRO} ".iiq"
  !insertmacro ${MACRO} ".mos"
  !insertmacro ${MACRO} ".3fr"
  !insertmacro ${MACRO} ".fff"
  !insertmacro ${MACRO} ".mrw"
  !insertmacro ${MACRO} ".srw"
  !insertmacro ${MACRO} ".x3f"
  !insertmacro ${MACRO} ".kdc"
  !insertmacro ${MACRO} ".dcr"
  !insertmacro ${MACRO} ".erf"
  !insertmacro ${MACRO} ".mef"
!macroend

Function .onInit
  SetRegView 64
  SetShellVarContext all
FunctionEnd

Function un.onInit
  SetRegView 64
  SetShellVarContext all
FunctionEnd

Section "${APP_NAME}" SecMain
  SectionIn RO
  SetOutPath "$INSTDIR"
  File "/oname=${EXE}" "${BINARY}"
  ; libheif and the decoders it links, with their licences (LGPL-3.0 for libheif and
  ; libde265, BSD-2-Clause for aom and dav1d).
  !ifndef NO_LIBHEIF
  File "${LIBHEIF_DIR}\bin\heif.dll"
  File "${LIBHEIF_DIR}\bin\libde265.dll"
  !ifdef AV1_AOM
    File "${LIBHEIF_DIR}\bin\aom.dll"
  !endif
  !ifdef AV1_DAV1D
    File "${LIBHEIF_DIR}\bin\dav1d.dll"
  !endif
  SetOutPath "$INSTDIR\licenses"
  File "/oname=libheif.txt" "${LIBHEIF_DIR}\share\libheif\copyright"
  File "/oname=libde265.txt" "${LIBHEIF_DIR}\share\libde265\copyright"
  !ifdef AV1_AOM
    File "/oname=aom.txt" "${LIBHEIF_DIR}\share\aom\copyright"
  !endif
  !ifdef AV1_DAV1D
    File "/oname=dav1d.txt" "${LIBHEIF_DIR}\share\dav1d\copyright"
  !endif
  !endif
  SetOutPath "$INSTDIR"
  WriteUninstaller "$INSTDIR\uninstall.exe"

  CreateShortCut "$SMPROGRAMS\${APP_NAME}.lnk" "$INSTDIR\${EXE}" "" "$INSTDIR\${EXE}" 0

  ; Lets "evatag" be started from the Run dialog and the shell without a PATH entry.
  WriteRegStr HKLM "Software\Microsoft\Windows\CurrentVersion\App Paths\${EXE}" "" "$INSTDIR\${EXE}"

  ; The program itself, as "Open with" shows it.
  WriteRegStr HKLM "Software\Classes\Applications\${EXE}" "FriendlyAppName" "${APP_NAME}"
  WriteRegStr HKLM "Software\Classes\Applications\${EXE}\DefaultIcon" "" '"$INSTDIR\${EXE}",0'
  WriteRegStr HKLM "Software\Classes\Applications\${EXE}\shell\open\command" "" '"$INSTDIR\${EXE}" "%1"'

  ; A ProgID for images opened with evatag.
  WriteRegStr HKLM "Software\Classes\${PROGID}" "" "Image (${APP_NAME})"
  WriteRegStr HKLM "Software\Classes\${PROGID}" "FriendlyTypeName" "Image"
  WriteRegStr HKLM "Software\Classes\${PROGID}\DefaultIcon" "" '"$INSTDIR\${EXE}",0'
  WriteRegStr HKLM "Software\Classes\${PROGID}\shell\open" "FriendlyAppName" "${APP_NAME}"
  WriteRegStr HKLM "Software\Classes\${PROGID}\shell\open\command" "" '"$INSTDIR\${EXE}" "%1"'

  ; Settings > Default apps.
  WriteRegStr HKLM "${CAPABILITIES_KEY}" "ApplicationName" "${APP_NAME}"
  WriteRegStr HKLM "${CAPABILITIES_KEY}" "ApplicationDescription" "Tag photos with ImageNet labels and find similar ones, on your own computer"
  WriteRegStr HKLM "${CAPABILITIES_KEY}" "ApplicationIcon" '"$INSTDIR\${EXE}",0'
  WriteRegStr HKLM "Software\RegisteredApplications" "${APP_NAME}" "${CAPABILITIES_KEY}"

  !insertmacro ForEachExtension AddExtension

  ; Apps & features entry.
  WriteRegStr HKLM "${UNINST_KEY}" "DisplayName" "${APP_NAME}"
  WriteRegStr HKLM "${UNINST_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKLM "${UNINST_KEY}" "DisplayIcon" '"$INSTDIR\${EXE}",0'
  WriteRegStr HKLM "${UNINST_KEY}" "Publisher" "${PUBLISHER}"
  WriteRegStr HKLM "${UNINST_KEY}" "URLInfoAbout" "${HOMEPAGE}"
  WriteRegStr HKLM "${UNINST_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKLM "${UNINST_KEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKLM "${UNINST_KEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegDWORD HKLM "${UNINST_KEY}" "NoModify" 1
  WriteRegDWORD HKLM "${UNINST_KEY}" "NoRepair" 1
  ${GetSize} "$INSTDIR" "/S=0K" $0 $1 $2
  IntFmt $0 "0x%08X" $0
  WriteRegDWORD HKLM "${UNINST_KEY}" "EstimatedSize" "$0"
SectionEnd

Section /o "Open in ${APP_NAME} on folders" SecFolder
  WriteRegStr HKLM "Software\Classes\Directory\shell\${APP_NAME}" "MUIVerb" "Open in ${APP_NAME}"
  WriteRegStr HKLM "Software\Classes\Directory\shell\${APP_NAME}" "Icon" '"$INSTDIR\${EXE}",0'
  WriteRegStr HKLM "Software\Classes\Directory\shell\${APP_NAME}\command" "" '"$INSTDIR\${EXE}" "%1"'
SectionEnd

Section "-Refresh"
  ; SHCNE_ASSOCCHANGED: Explorer rereads the associations.
  System::Call 'shell32::SHChangeNotify(i 0x08000000, i 0, p 0, p 0)'
SectionEnd

Section "Uninstall"
  Delete "$INSTDIR\${EXE}"
  Delete "$INSTDIR\heif.dll"
  Delete "$INSTDIR\libde265.dll"
  Delete "$INSTDIR\aom.dll"
  Delete "$INSTDIR\dav1d.dll"
  Delete "$INSTDIR\licenses\libheif.txt"
  Delete "$INSTDIR\licenses\libde265.txt"
  Delete "$INSTDIR\licenses\aom.txt"
  Delete "$INSTDIR\licenses\dav1d.txt"
  RMDir "$INSTDIR\licenses"
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR"
  Delete "$SMPROGRAMS\${APP_NAME}.lnk"

  !insertmacro ForEachExtension RemoveExtension
  DeleteRegKey HKLM "Software\Classes\Applications\${EXE}"
  DeleteRegKey HKLM "Software\Classes\${PROGID}"
  DeleteRegKey HKLM "Software\Classes\Directory\shell\${APP_NAME}"
  DeleteRegValue HKLM "Software\RegisteredApplications" "${APP_NAME}"
  DeleteRegKey /ifempty HKLM "Software\RegisteredApplications"
  DeleteRegKey HKLM "Software\${APP_NAME}"
  DeleteRegKey HKLM "Software\Microsoft\Windows\CurrentVersion\App Paths\${EXE}"
  DeleteRegKey HKLM "${UNINST_KEY}"

  ; Photos are never touched. The per-user logs (%APPDATA%\evatag) and caches
  ; (%LOCALAPPDATA%\evatag) are left in place, as uninstallers usually do.
  System::Call 'shell32::SHChangeNotify(i 0x08000000, i 0, p 0, p 0)'
SectionEnd
